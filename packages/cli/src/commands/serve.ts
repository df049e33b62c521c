import { outputFor, withOutputOptions } from '../context.js';
import { formatBytes, parseBytes, parseCount, parseDurationMs, UsageError } from '../format.js';
import type { Register } from './index.js';

interface ServeFlags {
  json?: boolean;
  quiet?: boolean;
  dir?: string;
  host: string;
  grpcPort: string;
  httpPort: string;
  grpc: boolean;
  http: boolean;
  maxSize: string;
  maxObjectSize?: string;
  retention: string;
  token?: string;
  verbose?: boolean;
}

/**
 * `fsw serve`: the fstree-compatible cache server (gRPC `fstree.CacheService` + HTTP object API) over one store.
 * Prints where it listens, logs one line per request with `--verbose` or `FSW_LOG=debug`, stops on SIGINT/SIGTERM.
 */
export const register: Register = (program, ctx) => {
  withOutputOptions(
    program
      .command('serve')
      .description('run the fstree-compatible cache server (gRPC jolt:// and HTTP) over one store')
      .option('--dir <dir>', 'the store directory (default: $FSTREE_CACHE, else ~/.cache/fstree)')
      .option('--host <host>', 'the interface to listen on', '127.0.0.1')
      .option('--grpc-port <port>', 'the gRPC port (0: any free port)', '9090')
      .option('--http-port <port>', 'the HTTP port (0: any free port)', '8080')
      .option('--no-grpc', 'do not serve gRPC')
      .option('--no-http', 'do not serve HTTP')
      .option('--max-size <size>', 'evict least-recently-used objects past this size', '10GiB')
      .option('--max-object-size <size>', 'refuse larger uploads (default: --max-size)')
      .option('--retention <duration>', 'never evict objects used more recently than this', '1h')
      .option(
        '--token <token>',
        'require "authorization: Bearer <token>" on every call (default: $FSW_TOKEN)',
      )
      .option('-v, --verbose', 'log one line per request on stderr (also FSW_LOG=debug)'),
  ).action(async (flags: ServeFlags) => {
    const out = outputFor(ctx, flags);
    const port = (text: string, what: string) => {
      const value = parseCount(text, what);
      if (value > 65535) throw new UsageError(`invalid ${what} '${text}' (expected 0-65535)`);
      return value;
    };
    const host = flags.host;
    const grpc = flags.grpc ? { host, port: port(flags.grpcPort, 'gRPC port') } : false;
    const http = flags.http ? { host, port: port(flags.httpPort, 'HTTP port') } : false;
    if (!grpc && !http) throw new UsageError('--no-grpc and --no-http leave nothing to serve');
    const maxBytes = parseBytes(flags.maxSize);
    const maxObjectBytes = flags.maxObjectSize === undefined ? undefined : parseBytes(flags.maxObjectSize);
    const retentionMs = parseDurationMs(flags.retention);
    const envToken = ctx.io.env.FSW_TOKEN;
    const token = flags.token ?? (envToken === undefined || envToken === '' ? undefined : envToken);
    const verbose = flags.verbose === true || /^(debug|trace)$/i.test(ctx.io.env.FSW_LOG ?? '');
    const stderr = ctx.io.stderr;

    const { createServer } = await import('@fsw/server');
    const server = await createServer({
      ...(flags.dir === undefined ? {} : { dir: flags.dir }),
      grpc,
      http,
      maxBytes,
      retentionMs,
      ...(maxObjectBytes === undefined ? {} : { maxObjectBytes }),
      ...(token === undefined ? {} : { token }),
      onError: (error) =>
        stderr.write(`fsw: serve: ${error instanceof Error ? error.message : String(error)}\n`),
      ...(verbose
        ? {
            onRequest: (e) => {
              const bytes = e.bytesReceived
                ? ` in=${e.bytesReceived}`
                : e.bytesSent
                  ? ` out=${e.bytesSent}`
                  : '';
              stderr.write(
                `${new Date().toISOString()} ${e.protocol} ${e.method} ${e.target} ${e.status} ${e.durationMs.toFixed(1)}ms${bytes}\n`,
              );
            },
          }
        : {}),
    });

    const { grpc: grpcAddress, http: httpAddress } = server.addresses;
    if (out.json) {
      out.record({ type: 'listening', grpc: grpcAddress?.url, http: httpAddress?.url, dir: server.dir });
    } else {
      if (grpcAddress) out.line(`grpc ${grpcAddress.url}`);
      if (httpAddress) out.line(`http ${httpAddress.url}`);
      out.line(
        `store ${server.dir} (max ${formatBytes(maxBytes)}${token === undefined ? '' : ', token required'})`,
      );
    }

    const signalName = await new Promise<NodeJS.Signals>((resolve) => {
      const onSignal = (name: NodeJS.Signals) => {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
        resolve(name);
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
    });
    if (!out.quiet && !out.json) stderr.write(`fsw: serve: ${signalName}, shutting down\n`);
    await server.close();
    if (out.json) out.record({ type: 'stopped', signal: signalName });
    ctx.setExitCode(out.failed ? 1 : 0);
  });
};
