import type { TreeEntry } from '@fsw/tree';
import { decodeTree } from '@fsw/tree';

/** The children of a tree object. @throws TreeError E_CORRUPT when the bytes are not a valid tree */
export function treeEntries(bytes: Uint8Array): readonly TreeEntry[] {
  return decodeTree(bytes);
}

/** Whether the bytes are a valid tree object (they are then filed as `.tree` in the store). */
export function isTreeObject(bytes: Uint8Array): boolean {
  try {
    decodeTree(bytes);
    return true;
  } catch {
    return false;
  }
}
