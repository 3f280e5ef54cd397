import { Readable } from "node:stream";

/**
 * Bytes per query when an attachment is streamed from the database, and the largest attachment read
 * whole with the item. node-postgres reads bytea as hex text, twice the size, and a database message
 * larger than one socket read (64 KiB) makes it grow a buffer for it, doubling; so pieces are kept
 * small. Measured with a 20 MB attachment: 32 KiB pieces add about 20 MiB to the sender's peak memory,
 * 256 KiB pieces about 55 MiB (mostly garbage waiting for collection), and send no faster.
 */
export const ATTACHMENT_CHUNK_BYTES = 32 * 1024;

/**
 * `size` bytes read `chunkBytes` at a time through `read(offset, length)`, each piece only when the
 * consumer (the message being sent) wants more, at most one piece ahead. Fails when `read` fails or
 * returns fewer bytes than asked for.
 */
export function chunkedStream(
  size: number,
  read: (offset: number, length: number) => Promise<Buffer>,
  chunkBytes = ATTACHMENT_CHUNK_BYTES,
): Readable {
  async function* pieces(): AsyncGenerator<Buffer> {
    for (let offset = 0; offset < size; offset += chunkBytes) {
      const length = Math.min(chunkBytes, size - offset);
      const piece = await read(offset, length);
      if (piece.length !== length) {
        throw new Error(`attachment: ${piece.length} bytes at offset ${offset} instead of ${length}`);
      }
      yield piece;
    }
  }
  return Readable.from(pieces(), { objectMode: false, highWaterMark: chunkBytes });
}
