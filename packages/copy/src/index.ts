export { copy, move } from './copy.js';
export type {
  CopyFilter,
  CopyOptions,
  CopyProgress,
  CopyResult,
  IncompleteCopyError,
  OverwritePolicy,
  PreserveOptions,
  ReflinkMode,
} from './types.js';
