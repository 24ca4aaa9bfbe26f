/**
 * The document hash behind replica checksums (worker/checksum.ts) and backup
 * manifests (issue 20): per document, SHA-256 of its canonical JSON (keys sorted
 * at every level); per table, the count and the sum of those digests modulo
 * 2^256, independent of order. Here so that the worker that hashes its tables,
 * the orchestrator and the client that check a backup against its manifest
 * compute the very same thing.
 */
import { createHash } from 'node:crypto';
import { canonicalJson, type Doc } from './commands.js';
import type { TableChecksum } from './messages.js';

const WORDS = 8;

/** SHA-256 of a document's canonical JSON (keys sorted at every level). */
export function docDigest(doc: Doc): Buffer {
  return createHash('sha256').update(canonicalJson(doc)).digest();
}

/** Count and order-independent sum (mod 2^256) of document digests, for one table. */
export class TableHasher {
  private readonly acc = new Uint32Array(WORDS);
  count = 0;

  /** Adds one document. */
  add(doc: Doc): void {
    this.addDigest(docDigest(doc));
  }

  /** Adds a 32-byte digest, read as a big-endian 256-bit number. */
  addDigest(digest: Buffer): void {
    let carry = 0;
    for (let i = WORDS - 1; i >= 0; i--) {
      const s = (this.acc[i] as number) + digest.readUInt32BE(i * 4) + carry;
      this.acc[i] = s >>> 0;
      carry = s > 0xffffffff ? 1 : 0;
    }
    this.count += 1;
  }

  result(): TableChecksum {
    let sum = '';
    for (const w of this.acc) sum += w.toString(16).padStart(8, '0');
    return { count: this.count, sum };
  }
}
