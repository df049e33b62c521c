export type { EntryType, WalkEntry, WalkOptions, WalkProgress } from './types.js';
export type { WalkIterable } from './walk.js';
export { walk } from './walk.js';
export type { WalkAllResult } from './walk-all.js';
export { walkAll } from './walk-all.js';
