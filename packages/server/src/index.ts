export { createServer } from './server.js';
export type {
  CacheServer,
  CreateServerOptions,
  ListenOptions,
  RequestEvent,
  ServerAddress,
  ServerEvictResult,
  ServerStats,
} from './types.js';
