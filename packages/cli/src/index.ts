export type { CommandContext } from './context.js';
export { formatBytes, parseBytes, parseCount, parseDurationMs, UsageError } from './format.js';
export { main, reportError } from './main.js';
export type { Io, Output, Progress, ProgressOptions } from './output.js';
export { createOutput } from './output.js';
export { createProgram } from './program.js';
