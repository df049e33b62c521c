/**
 * What {@link ObjectBatchDecoder.read} found next: a frame's header (the digest text and the byte count of the
 * object that follows), or the next bytes of that object (`last` when they complete it; an empty object gets one
 * empty, last part).
 */
export type BatchPart =
  | { readonly type: 'object'; readonly digest: string; readonly size: number }
  | { readonly type: 'bytes'; readonly bytes: Uint8Array; readonly last: boolean };

const NAME_LENGTH = 0;
const NAME = 1;
const SIZE = 2;
const BYTES = 3;
type State = typeof NAME_LENGTH | typeof NAME | typeof SIZE | typeof BYTES;

const EMPTY = new Uint8Array(0);
const textDecoder = new TextDecoder();

/**
 * Decodes a batch upload body (`encodeObjectBatch` of @fsw/remote: per object, a 2-byte big-endian length and the
 * digest text, then a 4-byte big-endian length and the bytes) from chunks as they arrive, without gathering the body:
 * {@link push} a chunk, then {@link read} parts until it answers undefined. Object bytes are views into the chunks;
 * only a header field cut by a chunk boundary is copied (into a small scratch buffer).
 */
export class ObjectBatchDecoder {
  #chunk: Uint8Array = EMPTY;
  #at = 0;
  #state: State = NAME_LENGTH;
  /** The length of the field being read (name length, name, size). */
  #need = 2;
  /** The bytes of a header field that straddles chunks, gathered so far. */
  #scratch: Uint8Array = EMPTY;
  #gathered = 0;
  #digest = '';
  /** Bytes of the current object still to come. */
  #left = 0;

  /** Gives the decoder the next chunk of the body (once the previous one was read to its end). */
  push(chunk: Uint8Array): void {
    this.#chunk = chunk;
    this.#at = 0;
  }

  /** The next part found in the chunk, or undefined once it is used up. */
  read(): BatchPart | undefined {
    for (;;) {
      if (this.#state === BYTES) {
        const available = this.#chunk.byteLength - this.#at;
        if (available === 0 && this.#left > 0) return undefined;
        const n = Math.min(this.#left, available);
        const bytes = n === 0 ? EMPTY : this.#chunk.subarray(this.#at, this.#at + n);
        this.#at += n;
        this.#left -= n;
        const last = this.#left === 0;
        if (last) this.#expect(NAME_LENGTH, 2);
        return { type: 'bytes', bytes, last };
      }
      const field = this.#field();
      if (field === undefined) return undefined;
      if (this.#state === NAME_LENGTH) {
        this.#expect(NAME, ((field[0] as number) << 8) | (field[1] as number));
      } else if (this.#state === NAME) {
        this.#digest = textDecoder.decode(field);
        this.#expect(SIZE, 4);
      } else {
        const size =
          (field[0] as number) * 0x1000000 +
          (((field[1] as number) << 16) | ((field[2] as number) << 8) | (field[3] as number));
        this.#left = size;
        this.#expect(BYTES, 0);
        return { type: 'object', digest: this.#digest, size };
      }
    }
  }

  /**
   * Undefined when the body ended between two objects (or was empty); otherwise what is missing, in the words of
   * `decodeObjectBatch`: `object batch: truncated digest length`, `... truncated digest`, `... truncated object <d>`.
   */
  truncation(): string | undefined {
    if (this.#state === NAME_LENGTH && this.#gathered === 0) return undefined;
    if (this.#state === NAME_LENGTH) return 'object batch: truncated digest length';
    if (this.#state === BYTES) return `object batch: truncated object ${this.#digest}`;
    return 'object batch: truncated digest';
  }

  #expect(state: State, need: number): void {
    this.#state = state;
    this.#need = need;
  }

  /** The current header field when all of it has arrived (a view, valid until the next call), else undefined. */
  #field(): Uint8Array | undefined {
    const need = this.#need;
    const available = this.#chunk.byteLength - this.#at;
    if (this.#gathered === 0 && available >= need) {
      const field = this.#chunk.subarray(this.#at, this.#at + need);
      this.#at += need;
      return field;
    }
    if (available === 0) return undefined;
    if (this.#scratch.byteLength < need) {
      const grown = new Uint8Array(Math.max(need, 128));
      grown.set(this.#scratch.subarray(0, this.#gathered));
      this.#scratch = grown;
    }
    const n = Math.min(need - this.#gathered, available);
    this.#scratch.set(this.#chunk.subarray(this.#at, this.#at + n), this.#gathered);
    this.#at += n;
    this.#gathered += n;
    if (this.#gathered < need) return undefined;
    this.#gathered = 0;
    return this.#scratch.subarray(0, need);
  }
}
