import { RemoteError } from '@fsw/errors';
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';

/**
 * The fstree gRPC protocol (`package fstree; service CacheService`), as proto3 text. The service definition below
 * encodes exactly these messages by hand (no protobufjs at run time); the text is exported for documentation and for
 * tools that want to load it themselves.
 */
export const CACHE_SERVICE_PROTO = `syntax = "proto3";

package fstree;

service CacheService {
  rpc HasObject(HasObjectRequest) returns (HasObjectResponse);
  rpc HasTree(HasTreeRequest) returns (stream HasTreeResponse);
  rpc ReadObject(ReadObjectRequest) returns (stream ReadObjectResponse);
  rpc WriteObject(stream WriteObjectRequest) returns (WriteObjectResponse);
}

message HasObjectRequest { repeated string digest = 1; }
message HasObjectResponse { repeated bool present = 1; }
message HasTreeRequest { repeated string digest = 1; }
message HasTreeResponse {
  repeated string missing_trees = 1;
  repeated string missing_objects = 2;
}
message ReadObjectRequest { string digest = 1; }
message ReadObjectResponse { bytes data = 1; }
message WriteObjectRequest {
  string digest = 1;
  bytes data = 2;
}
message WriteObjectResponse {}
`;

/** `HasObject` request: the digests to look up. */
export interface HasObjectRequest {
  readonly digest: readonly string[];
}
/** `HasObject` response: one flag per requested digest, in request order. */
export interface HasObjectResponse {
  readonly present: readonly boolean[];
}
/** `HasTree` request: the root trees to inspect recursively. */
export interface HasTreeRequest {
  readonly digest: readonly string[];
}
/**
 * One `HasTree` response message (the server streams several). Missing trees may be bare hex or full digests
 * (the reference server sends bare hex); use {@link normalizeDigest} on both lists.
 */
export interface HasTreeResponse {
  readonly missingTrees: readonly string[];
  readonly missingObjects: readonly string[];
}
/** `ReadObject` request. */
export interface ReadObjectRequest {
  readonly digest: string;
  /**
   * Several digests (field 1 repeated), for a call with {@link READ_BATCH_HEADER}; a server that knows nothing of it
   * reads the last one, as proto3 does with a repeated scalar field. Decoded only when more than one is present.
   */
  readonly digests?: readonly string[];
}
/** One chunk of a `ReadObject` response stream (64 KiB is usual). */
export interface ReadObjectResponse {
  readonly data: Uint8Array;
  /** With {@link READ_BATCH_HEADER}: set (field 2) on the first message of each object. */
  readonly digest?: string;
  /**
   * With {@link READ_BATCH_HEADER}: the object named by `digest` is not in this stream (field 3): missing, or too
   * large to batch; the client reads it with a call of its own.
   */
  readonly skipped?: boolean;
}
/**
 * One message of a `WriteObject` request stream. Our client repeats the digest in every message; a server should
 * take the first non-empty one.
 */
export interface WriteObjectRequest {
  readonly digest: string;
  readonly data: Uint8Array;
}
/** `WriteObject` response (empty). */
export type WriteObjectResponse = Record<string, never>;

/**
 * An extension of the protocol between `fsw serve` and our client, invisible to others: a server that accepts several
 * objects in one `WriteObject` stream says so with this header (value `1`) in the initial metadata of its `HasTree`
 * and `HasObject` answers; a client that saw it may then send this request header (value `1`) on a `WriteObject` call
 * and stream several objects through it, each as one or more consecutive messages naming its digest (a new digest
 * starts the next object; no digest appears twice in a row). The server verifies and stores each object as usual,
 * skips those it holds, and answers once for all. Servers that never sent the header (jolt-cache) only ever see
 * one object per call, and our server without the request header behaves exactly as the protocol says.
 */
export const WRITE_BATCH_HEADER = 'fsw-write-batch';

/**
 * The same kind of extension for downloads: a server that can stream several small objects through one `ReadObject`
 * call says so with this header in the initial metadata of its answers (`HasObject`, `HasTree`, `ReadObject`). A
 * client that saw it may send it (value `1`) on a `ReadObject` call whose request names several digests; the server
 * then answers every digest in order: a first message carrying the digest (field 2) and the start of the bytes, more
 * messages with the rest; or one message with the digest and `skipped` (field 3) for an object it lacks or will not
 * batch (over 1 MiB), which the client then reads alone. Nothing changes for calls without the header.
 */
export const READ_BATCH_HEADER = 'fsw-read-batch';

/** The default chunk size of `ReadObject`/`WriteObject` streams: 64 KiB. */
export const CHUNK_BYTES = 64 * 1024;

// ---------------------------------------------------------------------------------------------------------------
// A minimal proto3 wire codec for the eight messages above: strings, bytes, bools (packed or not), nothing else.

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder('utf-8', { fatal: false });

class Writer {
  private readonly parts: Uint8Array[] = [];
  private head: number[] = [];

  varint(n: number): void {
    while (n >= 0x80) {
      this.head.push((n & 0x7f) | 0x80);
      n = Math.floor(n / 128);
    }
    this.head.push(n);
  }

  bytesField(field: number, bytes: Uint8Array): void {
    this.varint((field << 3) | 2);
    this.varint(bytes.length);
    this.flushHead();
    if (bytes.length > 0) this.parts.push(bytes);
  }

  stringField(field: number, value: string): void {
    this.bytesField(field, textEncoder.encode(value));
  }

  private flushHead(): void {
    if (this.head.length > 0) {
      this.parts.push(Uint8Array.from(this.head));
      this.head = [];
    }
  }

  finish(): Buffer {
    this.flushHead();
    return Buffer.concat(this.parts);
  }
}

class Reader {
  pos = 0;
  constructor(private readonly buf: Uint8Array) {}

  get done(): boolean {
    return this.pos >= this.buf.length;
  }

  varint(): number {
    let result = 0;
    let mul = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.buf.length) throw protocolError('truncated varint');
      const b = this.buf[this.pos++]!;
      result += (b & 0x7f) * mul;
      if (b < 0x80) return result;
      mul *= 128;
    }
    throw protocolError('varint too long');
  }

  bytes(): Uint8Array {
    const len = this.varint();
    const end = this.pos + len;
    if (end > this.buf.length) throw protocolError('truncated length-delimited field');
    const out = this.buf.subarray(this.pos, end);
    this.pos = end;
    return out;
  }

  skip(wireType: number): void {
    switch (wireType) {
      case 0:
        this.varint();
        return;
      case 1:
        this.pos += 8;
        break;
      case 2:
        this.bytes();
        return;
      case 5:
        this.pos += 4;
        break;
      default:
        throw protocolError(`unsupported wire type ${wireType}`);
    }
    if (this.pos > this.buf.length) throw protocolError('truncated fixed field');
  }
}

function protocolError(message: string): RemoteError {
  return new RemoteError('E_PROTOCOL', `malformed fstree.CacheService message: ${message}`);
}

/** Reads every field of a message, calling `onField` with the field number, wire type and the reader positioned on the value. */
function readFields(buf: Uint8Array, onField: (field: number, wireType: number, r: Reader) => boolean): void {
  const r = new Reader(buf);
  while (!r.done) {
    const key = r.varint();
    const field = Math.floor(key / 8);
    const wireType = key & 7;
    if (!onField(field, wireType, r)) r.skip(wireType);
  }
}

function encodeStrings(field: number, values: readonly string[]): Buffer {
  const w = new Writer();
  for (const v of values) w.stringField(field, v);
  return w.finish();
}

function decodeStrings(buf: Uint8Array, field: number): string[] {
  const out: string[] = [];
  readFields(buf, (f, wt, r) => {
    if (f !== field || wt !== 2) return false;
    out.push(textDecoder.decode(r.bytes()));
    return true;
  });
  return out;
}

/** Encodes a `HasObjectRequest`. */
export function encodeHasObjectRequest(m: HasObjectRequest): Buffer {
  return encodeStrings(1, m.digest);
}
/** Decodes a `HasObjectRequest`. @throws RemoteError E_PROTOCOL */
export function decodeHasObjectRequest(buf: Uint8Array): HasObjectRequest {
  return { digest: decodeStrings(buf, 1) };
}
/** Encodes a `HasObjectResponse` (bools packed, as proto3 does). */
export function encodeHasObjectResponse(m: HasObjectResponse): Buffer {
  if (m.present.length === 0) return Buffer.alloc(0);
  const w = new Writer();
  w.bytesField(
    1,
    Uint8Array.from(m.present, (p) => (p ? 1 : 0)),
  );
  return w.finish();
}
/** Decodes a `HasObjectResponse`, packed or unpacked. @throws RemoteError E_PROTOCOL */
export function decodeHasObjectResponse(buf: Uint8Array): HasObjectResponse {
  const present: boolean[] = [];
  readFields(buf, (f, wt, r) => {
    if (f !== 1) return false;
    if (wt === 0) {
      present.push(r.varint() !== 0);
      return true;
    }
    if (wt !== 2) return false;
    const packed = new Reader(r.bytes());
    while (!packed.done) present.push(packed.varint() !== 0);
    return true;
  });
  return { present };
}
/** Encodes a `HasTreeRequest`. */
export function encodeHasTreeRequest(m: HasTreeRequest): Buffer {
  return encodeStrings(1, m.digest);
}
/** Decodes a `HasTreeRequest`. @throws RemoteError E_PROTOCOL */
export function decodeHasTreeRequest(buf: Uint8Array): HasTreeRequest {
  return { digest: decodeStrings(buf, 1) };
}
/** Encodes a `HasTreeResponse`. */
export function encodeHasTreeResponse(m: HasTreeResponse): Buffer {
  const w = new Writer();
  for (const v of m.missingTrees) w.stringField(1, v);
  for (const v of m.missingObjects) w.stringField(2, v);
  return w.finish();
}
/** Decodes a `HasTreeResponse`. @throws RemoteError E_PROTOCOL */
export function decodeHasTreeResponse(buf: Uint8Array): HasTreeResponse {
  const missingTrees: string[] = [];
  const missingObjects: string[] = [];
  readFields(buf, (f, wt, r) => {
    if (wt !== 2 || (f !== 1 && f !== 2)) return false;
    (f === 1 ? missingTrees : missingObjects).push(textDecoder.decode(r.bytes()));
    return true;
  });
  return { missingTrees, missingObjects };
}
/** Encodes a `ReadObjectRequest`. */
export function encodeReadObjectRequest(m: ReadObjectRequest): Buffer {
  if (m.digests !== undefined && m.digests.length > 0) return encodeStrings(1, m.digests);
  return encodeStrings(1, m.digest === '' ? [] : [m.digest]);
}
/** Decodes a `ReadObjectRequest`. @throws RemoteError E_PROTOCOL */
export function decodeReadObjectRequest(buf: Uint8Array): ReadObjectRequest {
  const all = decodeStrings(buf, 1);
  const digest = all[all.length - 1] ?? '';
  return all.length > 1 ? { digest, digests: all } : { digest };
}
/** Encodes a `ReadObjectResponse`. */
export function encodeReadObjectResponse(m: ReadObjectResponse): Buffer {
  if (m.data.length === 0 && !m.digest && !m.skipped) return Buffer.alloc(0);
  const w = new Writer();
  if (m.data.length > 0) w.bytesField(1, m.data);
  if (m.digest) w.stringField(2, m.digest);
  if (m.skipped) {
    w.varint((3 << 3) | 0);
    w.varint(1);
  }
  return w.finish();
}
/** Decodes a `ReadObjectResponse` (the data is a view into `buf`, not a copy). @throws RemoteError E_PROTOCOL */
export function decodeReadObjectResponse(buf: Uint8Array): ReadObjectResponse {
  let data: Uint8Array = new Uint8Array(0);
  let digest: string | undefined;
  let skipped = false;
  readFields(buf, (f, wt, r) => {
    if (f === 1 && wt === 2) data = r.bytes();
    else if (f === 2 && wt === 2) digest = textDecoder.decode(r.bytes());
    else if (f === 3 && wt === 0) skipped = r.varint() !== 0;
    else return false;
    return true;
  });
  if (digest === undefined && !skipped) return { data };
  return skipped ? { data, digest, skipped } : { data, digest };
}
/** Encodes a `WriteObjectRequest`. */
export function encodeWriteObjectRequest(m: WriteObjectRequest): Buffer {
  const w = new Writer();
  if (m.digest !== '') w.stringField(1, m.digest);
  if (m.data.length > 0) w.bytesField(2, m.data);
  return w.finish();
}
/** Decodes a `WriteObjectRequest` (the data is a view into `buf`). @throws RemoteError E_PROTOCOL */
export function decodeWriteObjectRequest(buf: Uint8Array): WriteObjectRequest {
  let digest = '';
  let data: Uint8Array = new Uint8Array(0);
  readFields(buf, (f, wt, r) => {
    if (wt !== 2) return false;
    if (f === 1) digest = textDecoder.decode(r.bytes());
    else if (f === 2) data = r.bytes();
    else return false;
    return true;
  });
  return { digest, data };
}
/** Encodes a `WriteObjectResponse` (always empty). */
export function encodeWriteObjectResponse(_m: WriteObjectResponse): Buffer {
  return Buffer.alloc(0);
}
/** Decodes a `WriteObjectResponse`. */
export function decodeWriteObjectResponse(_buf: Uint8Array): WriteObjectResponse {
  return {};
}

function method<Req, Res>(
  name: string,
  requestStream: boolean,
  responseStream: boolean,
  encReq: (m: Req) => Buffer,
  decReq: (b: Buffer) => Req,
  encRes: (m: Res) => Buffer,
  decRes: (b: Buffer) => Res,
): MethodDefinition<Req, Res> {
  return {
    path: `/fstree.CacheService/${name}`,
    requestStream,
    responseStream,
    requestSerialize: encReq,
    requestDeserialize: decReq,
    responseSerialize: encRes,
    responseDeserialize: decRes,
    originalName: name.charAt(0).toLowerCase() + name.slice(1),
  };
}

/** The shape of {@link cacheServiceDefinition}: one entry per rpc, keyed by its proto name. */
export interface CacheServiceDefinition extends ServiceDefinition {
  readonly HasObject: MethodDefinition<HasObjectRequest, HasObjectResponse>;
  readonly HasTree: MethodDefinition<HasTreeRequest, HasTreeResponse>;
  readonly ReadObject: MethodDefinition<ReadObjectRequest, ReadObjectResponse>;
  readonly WriteObject: MethodDefinition<WriteObjectRequest, WriteObjectResponse>;
}

/**
 * `fstree.CacheService` as a grpc-js service definition, for both sides:
 * `new grpc.Server().addService(cacheServiceDefinition, { HasObject, HasTree, ReadObject, WriteObject })` and
 * `grpc.makeGenericClientConstructor(cacheServiceDefinition, 'CacheService')`. Wire-compatible with fstree's C++
 * client and the jolt-cache server.
 */
export const cacheServiceDefinition: CacheServiceDefinition = {
  HasObject: method(
    'HasObject',
    false,
    false,
    encodeHasObjectRequest,
    decodeHasObjectRequest,
    encodeHasObjectResponse,
    decodeHasObjectResponse,
  ),
  HasTree: method(
    'HasTree',
    false,
    true,
    encodeHasTreeRequest,
    decodeHasTreeRequest,
    encodeHasTreeResponse,
    decodeHasTreeResponse,
  ),
  ReadObject: method(
    'ReadObject',
    false,
    true,
    encodeReadObjectRequest,
    decodeReadObjectRequest,
    encodeReadObjectResponse,
    decodeReadObjectResponse,
  ),
  WriteObject: method(
    'WriteObject',
    true,
    false,
    encodeWriteObjectRequest,
    decodeWriteObjectRequest,
    encodeWriteObjectResponse,
    decodeWriteObjectResponse,
  ),
};

// ---------------------------------------------------------------------------------------------------------------
// Digests and HTTP paths.

const HEX64 = /^[0-9a-f]{64}$/;
const HEX40 = /^[0-9a-f]{40}$/;

/**
 * The full form of a digest as fstree reads it: `blake3:<64 hex>` and `sha1:<40 hex>` stay as they are (hex
 * lowercased), a bare 64-hex string becomes `blake3:<hex>` and a bare 40-hex string `sha1:<hex>`.
 * @throws RemoteError E_INVALID_ARGUMENT for anything else
 */
export function normalizeDigest(digest: string): string {
  const lower = digest.trim().toLowerCase();
  if (HEX64.test(lower)) return `blake3:${lower}`;
  if (HEX40.test(lower)) return `sha1:${lower}`;
  const colon = lower.indexOf(':');
  if (colon > 0) {
    const algo = lower.slice(0, colon);
    const hex = lower.slice(colon + 1);
    if ((algo === 'blake3' && HEX64.test(hex)) || (algo === 'sha1' && HEX40.test(hex))) return lower;
  }
  throw new RemoteError('E_INVALID_ARGUMENT', `not a digest: ${JSON.stringify(digest)}`);
}

/** True when `digest` is a digest in either form {@link normalizeDigest} accepts. */
export function isDigest(digest: string): boolean {
  try {
    normalizeDigest(digest);
    return true;
  } catch {
    return false;
  }
}

/** The jolt-cache object path of a digest: `/objects/<digest>` (for `HEAD`, `GET`, `PUT`). */
export function objectPath(digest: string): string {
  return `/objects/${digest}`;
}

/** The path of the batch query: `POST /objects?missing` or `POST /objects?present` with a {@link BatchQuery} body. */
export function batchPath(which: 'missing' | 'present'): string {
  return `/objects?${which}`;
}

/** The JSON body of the batch query (`POST /objects?missing|present`), and of its answer. */
export interface BatchQuery {
  readonly blobs: readonly string[];
}

/** The body of a batch query naming `digests`: `{"blobs":[...]}`. */
export function encodeBatchQuery(digests: readonly string[]): string {
  return JSON.stringify({ blobs: digests } satisfies BatchQuery);
}

/**
 * Reads a batch answer: `{"blobs": [...]}` (the digests that are missing, resp. present). Also accepts
 * `{"missing": [...]}`/`{"present": [...]}` and a bare JSON array, which other servers send. jolt-cache answers
 * `{"missing": [...], "present": [...]}` with both keys always there and `null` for an empty list, so a `null` list
 * under the key asked for is an empty answer.
 * @throws RemoteError E_PROTOCOL when the body is none of these
 */
export function decodeBatchAnswer(body: string, which: 'missing' | 'present'): string[] {
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch (cause) {
    throw new RemoteError('E_PROTOCOL', `batch ${which} answer is not JSON`, { cause });
  }
  let list: unknown;
  if (Array.isArray(value)) list = value;
  else if (typeof value === 'object' && value !== null) {
    const record = value as Record<string, unknown>;
    const key = record.blobs !== undefined ? 'blobs' : which;
    list = record[key] === null ? [] : record[key];
  }
  if (!Array.isArray(list) || !list.every((d) => typeof d === 'string')) {
    throw new RemoteError('E_PROTOCOL', `batch ${which} answer has no "blobs" list of strings`);
  }
  return list as string[];
}

/** The content type of an {@link encodeObjectBatch} body. */
export const OBJECT_BATCH_TYPE = 'application/x-fsw-objects';

/**
 * The HTTP form of {@link WRITE_BATCH_HEADER}, the path of a batch upload (below the remote's base path). `fsw serve`
 * sends that header (value `1`) as a response header of the batch query (`POST /objects?missing|present`); a client
 * that saw it may upload several objects in one `POST <base>/objects?write` whose body is {@link encodeObjectBatch}'s
 * (content type {@link OBJECT_BATCH_TYPE}). The server verifies and stores each object as a `PUT` would, skips those
 * it holds, and answers `200` with `{"stored": n, "present": m}`; a digest mismatch is a `400` naming the object,
 * and an object over the server's size limit a `413` (both may come before the body has been sent whole; the objects
 * before it are stored, as are those before a body that is cut short). Servers that never send the header only ever
 * see `PUT`s.
 */
export const OBJECT_BATCH_PATH = '/objects?write';

/** One object of an object batch: its digest (full or bare hex) and bytes. */
export interface BatchFrame {
  readonly digest: string;
  readonly bytes: Uint8Array;
}

/**
 * The body of a batch upload: per object, a 2-byte big-endian length and the digest text (ASCII), then a 4-byte
 * big-endian length and the bytes.
 */
export function encodeObjectBatch(objects: readonly BatchFrame[]): Uint8Array {
  let size = 0;
  const names = objects.map((o) => textEncoder.encode(o.digest));
  for (let i = 0; i < objects.length; i++) size += 6 + names[i]!.length + objects[i]!.bytes.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let at = 0;
  objects.forEach((o, i) => {
    const name = names[i]!;
    view.setUint16(at, name.length);
    out.set(name, at + 2);
    at += 2 + name.length;
    view.setUint32(at, o.bytes.length);
    out.set(o.bytes, at + 4);
    at += 4 + o.bytes.length;
  });
  return out;
}

/**
 * Reads a batch upload body (see {@link encodeObjectBatch}); the bytes are views into `body`.
 * @throws RemoteError E_PROTOCOL when it is truncated or malformed
 */
export function decodeObjectBatch(body: Uint8Array): BatchFrame[] {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const out: BatchFrame[] = [];
  let at = 0;
  while (at < body.length) {
    if (at + 2 > body.length) throw new RemoteError('E_PROTOCOL', 'object batch: truncated digest length');
    const nameEnd = at + 2 + view.getUint16(at);
    if (nameEnd + 4 > body.length) throw new RemoteError('E_PROTOCOL', 'object batch: truncated digest');
    const digest = textDecoder.decode(body.subarray(at + 2, nameEnd));
    const end = nameEnd + 4 + view.getUint32(nameEnd);
    if (end > body.length) throw new RemoteError('E_PROTOCOL', `object batch: truncated object ${digest}`);
    out.push({ digest, bytes: body.subarray(nameEnd + 4, end) });
    at = end;
  }
  return out;
}

/**
 * The path the fstree C++ HTTP client uses for a digest string `s`: `<base>/<s[0:2]>/<s[2:8]>/<s[6:]>`. The last
 * segment overlaps the second by two characters, so a BLAKE3 digest `blake3:<hex>` lands at
 * `<base>/bl/ake3:<hex[0]>/:<hex>` (observed from the real client, which PUTs, HEADs and GETs exactly these paths).
 * `base` is the URL path of the remote (no trailing slash needed).
 * @default base ''
 */
export function fstreeClientPath(digest: string, base = ''): string {
  const b = base.endsWith('/') ? base.slice(0, -1) : base;
  return `${b}/${digest.slice(0, 2)}/${digest.slice(2, 8)}/${digest.slice(6)}`;
}

/**
 * The digest named by an fstree-client path (the inverse of {@link fstreeClientPath}), or `undefined` when
 * `pathname` is not of that form. Percent-escapes (`%3A` for `:`) are decoded. The non-overlapping split
 * `<s[0:2]>/<s[2:8]>/<s[8:]>` that `fstreeClientPath` produced up to @fsw/remote 0.1.0 is read too (the two forms
 * cannot be confused: they give digests of different lengths).
 * @default base ''
 */
export function digestFromFstreeClientPath(pathname: string, base = ''): string | undefined {
  const b = base.endsWith('/') ? base.slice(0, -1) : base;
  if (!pathname.startsWith(`${b}/`)) return undefined;
  const parts = pathname.slice(b.length + 1).split('/');
  if (parts.length !== 3) return undefined;
  let decoded: string[];
  try {
    decoded = parts.map((p) => decodeURIComponent(p));
  } catch {
    return undefined;
  }
  const [head, middle, tail] = decoded as [string, string, string];
  if (head.length !== 2 || middle.length !== 6 || tail.length < 2) return undefined;
  if (tail.startsWith(middle.slice(4))) {
    const overlapped = head + middle + tail.slice(2);
    if (isDigest(overlapped)) return normalizeDigest(overlapped);
  }
  const concatenated = head + middle + tail;
  return isDigest(concatenated) ? normalizeDigest(concatenated) : undefined;
}

/**
 * The digest named by a jolt-cache object path `/objects/<digest>`, or `undefined`. Percent-escapes are decoded.
 */
export function digestFromObjectPath(pathname: string): string | undefined {
  if (!pathname.startsWith('/objects/')) return undefined;
  let rest: string;
  try {
    rest = decodeURIComponent(pathname.slice('/objects/'.length));
  } catch {
    return undefined;
  }
  return isDigest(rest) ? normalizeDigest(rest) : undefined;
}
