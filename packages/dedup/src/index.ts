export { defaultCachePath } from './cache.js';
export { dedupe } from './dedupe.js';
export { type FileFacts, mergeFiles, type StatFilesOptions, statFiles } from './files.js';
export { findDuplicates, scanDuplicates } from './find.js';
export { groupDuplicates, scanFiles } from './group.js';
export {
  type DefaultStagesOptions,
  defaultStages,
  type FullHashStageOptions,
  fullHashStage,
  type PartialHashStageOptions,
  type PartialWhere,
  partialHashStage,
} from './hash-stages.js';
export { byteCompareStage, sizeStage, splitBy } from './stages.js';
export type {
  CandidateGroup,
  DedupCacheOption,
  DedupeAction,
  DedupeDone,
  DedupeKeep,
  DedupeOptions,
  DedupeResult,
  DedupeSkip,
  DedupFile,
  DedupProgress,
  DedupStage,
  DigestStore,
  DuplicateGroup,
  DuplicateScan,
  FindDuplicatesOptions,
  GroupDuplicatesOptions,
  StageContext,
} from './types.js';
