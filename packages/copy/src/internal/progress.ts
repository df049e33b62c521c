import type { CopyProgress } from '../types.js';

/** Counts the work done and calls `onProgress` at most every `intervalMs` (checked on each update: no timer). */
export class Tracker {
  bytesCopied = 0;
  filesCompleted = 0;
  totalBytes = 0;
  totalFiles = 0;
  currentFile: string | undefined;
  private last = 0;
  private readonly onProgress: ((progress: CopyProgress) => void) | undefined;
  private readonly intervalMs: number;

  constructor(onProgress: ((progress: CopyProgress) => void) | undefined, intervalMs: number) {
    this.onProgress = onProgress;
    this.intervalMs = intervalMs;
  }

  /** Bytes written (negative to take back the bytes of a file that failed). */
  addBytes(bytes: number, file: string): void {
    this.bytesCopied += bytes;
    this.currentFile = file;
    this.tick();
  }

  /** Several files completed at once (a slice or a batch of small files), with their bytes: one check of the clock. */
  addFiles(files: number, bytes: number, file: string | undefined): void {
    this.filesCompleted += files;
    this.bytesCopied += bytes;
    if (file !== undefined) this.currentFile = file;
    this.tick();
  }

  /** One file or symlink is complete. */
  fileDone(file: string): void {
    this.filesCompleted++;
    this.currentFile = file;
    this.tick();
  }

  private tick(): void {
    if (this.onProgress === undefined) return;
    const now = performance.now();
    if (now - this.last < this.intervalMs) return;
    this.emit();
  }

  /** Calls `onProgress` now (the final report). */
  emit(): void {
    if (this.onProgress === undefined) return;
    this.last = performance.now();
    const p: CopyProgress = {
      bytesCopied: this.bytesCopied,
      totalBytes: this.totalBytes,
      filesCompleted: this.filesCompleted,
      totalFiles: this.totalFiles,
      ...(this.currentFile !== undefined ? { currentFile: this.currentFile } : {}),
    };
    this.onProgress(p);
  }
}
