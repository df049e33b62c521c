export { FileWatcher, type FileWatcherEvents } from './file-watcher.js';
export { changesSince, writeSnapshot } from './snapshot.js';
export type {
  CreatedEvent,
  DeletedEvent,
  FileEvent,
  FileEventType,
  FilterOptions,
  ModifiedEvent,
  RenamedEvent,
  SnapshotOptions,
  WatchOptions,
} from './types.js';
export { watch } from './watch.js';
