import { decodeObjectBatch, encodeObjectBatch } from '@fsw/remote';
import { describe, expect, it } from 'vitest';
import { ObjectBatchDecoder } from '../src/internal/object-batch.js';
import { bytesOf } from './helpers.js';

interface Decoded {
  objects: { digest: string; size: number; bytes?: Buffer }[];
  truncation: string | undefined;
  /** Every bytes part, with the chunk it came from. */
  views: { bytes: Uint8Array; chunk: Uint8Array }[];
}

/** Feeds `chunks` to a fresh decoder, reading every part after each one. */
function decode(chunks: readonly Uint8Array[]): Decoded {
  const decoder = new ObjectBatchDecoder();
  const out: Decoded = { objects: [], truncation: undefined, views: [] };
  let pieces: Uint8Array[] = [];
  for (const chunk of chunks) {
    decoder.push(chunk);
    for (let part = decoder.read(); part !== undefined; part = decoder.read()) {
      if (part.type === 'object') {
        out.objects.push({ digest: part.digest, size: part.size });
        pieces = [];
        continue;
      }
      pieces.push(part.bytes);
      out.views.push({ bytes: part.bytes, chunk });
      if (part.last) (out.objects.at(-1) as Decoded['objects'][number]).bytes = Buffer.concat(pieces);
    }
  }
  out.truncation = decoder.truncation();
  return out;
}

/** What decodeObjectBatch makes of a whole body, in the shape of {@link decode}'s objects. */
function reference(body: Uint8Array): { objects: Decoded['objects']; truncation: string | undefined } {
  try {
    const frames = decodeObjectBatch(body);
    return {
      objects: frames.map((f) => ({
        digest: f.digest,
        size: f.bytes.byteLength,
        bytes: Buffer.from(f.bytes),
      })),
      truncation: undefined,
    };
  } catch (error) {
    return { objects: [], truncation: (error as Error).message };
  }
}

const frames = [
  { digest: `blake3:${'a'.repeat(64)}`, bytes: bytesOf(300, 1) },
  { digest: `blake3:${'b'.repeat(64)}`, bytes: new Uint8Array(0) },
  { digest: 'c'.repeat(40), bytes: bytesOf(70, 2) },
];
const body = encodeObjectBatch(frames);
const expected = reference(body).objects;

describe('ObjectBatchDecoder', () => {
  it('decodes a body cut into two chunks at every position, and one byte at a time, as decodeObjectBatch does', () => {
    expect(expected).toHaveLength(3);
    for (let cut = 0; cut <= body.byteLength; cut++) {
      const decoded = decode([body.subarray(0, cut), body.subarray(cut)]);
      expect(decoded.objects, `cut at ${cut}`).toEqual(expected);
      expect(decoded.truncation, `cut at ${cut}`).toBeUndefined();
    }
    const bytewise = decode(Array.from(body, (_, i) => body.subarray(i, i + 1)));
    expect(bytewise.objects).toEqual(expected);
    expect(bytewise.truncation).toBeUndefined();
  });

  it('hands out an object that lies within one chunk as a view of that chunk, not a copy', () => {
    const decoded = decode([body]);
    expect(decoded.objects).toEqual(expected);
    // One part per object (the empty one included); the others are views into the body's own memory.
    expect(decoded.views.map((v) => v.bytes.byteLength)).toEqual([300, 0, 70]);
    for (const { bytes } of decoded.views.filter((v) => v.bytes.byteLength > 0)) {
      expect(bytes.buffer).toBe(body.buffer);
    }
    // Split inside the first object: two views, one into each chunk.
    const first = body.subarray(0, 200);
    const rest = body.subarray(200);
    const split = decode([first, rest]);
    expect(split.views.slice(0, 2).map((v) => v.bytes.buffer === v.chunk.buffer)).toEqual([true, true]);
  });

  it('reports a body that ends mid-frame as decodeObjectBatch does, at every length', () => {
    for (let length = 0; length <= body.byteLength; length++) {
      const prefix = body.subarray(0, length);
      const want = reference(prefix);
      // Fed in chunks of 5 bytes, so that the end falls inside gathered header fields too.
      const chunks: Uint8Array[] = [];
      for (let at = 0; at < length; at += 5) chunks.push(prefix.subarray(at, Math.min(length, at + 5)));
      const decoded = decode(chunks);
      expect(decoded.truncation, `length ${length}`).toBe(want.truncation);
      if (want.truncation === undefined) expect(decoded.objects, `length ${length}`).toEqual(want.objects);
    }
  });
});
