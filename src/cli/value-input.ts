/**
 * Where `cohort kv put` takes its value from: the command line, a file (`--file PATH`) or all of
 * stdin (`-` as VALUE, or `--file -`). A file or stdin is read as raw bytes (binary safe) and
 * never past the store's limit (`KV_VALUE_BYTES_MAX`, 64 KiB): a larger value is refused with
 * one line naming the limit, before anything is sent (the daemon would refuse it too).
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import { KV_VALUE_BYTES_MAX } from '../constants.js';

/** Where a value comes from. */
export type ValueSource =
  | { readonly kind: 'arg'; readonly value: string }
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'stdin' };

/** A value that cannot be read or is over the limit: `message` is the one line shown. */
export class ValueInputError extends Error {
  override readonly name = 'ValueInputError';
}

function tooLarge(what: string, size: string): ValueInputError {
  return new ValueInputError(
    `the value from ${what} is ${size} bytes; the limit is ${KV_VALUE_BYTES_MAX} bytes (${KV_VALUE_BYTES_MAX / 1024} KiB, KV_VALUE_BYTES_MAX): store large data elsewhere and keep a reference in the key`,
  );
}

/**
 * The source named by the command line: VALUE, `--file PATH`, or stdin for `-`. Returns a usage
 * message when neither or both are given.
 */
export function valueSource(value: string | undefined, file: string | undefined): ValueSource | string {
  if ((value === undefined) === (file === undefined)) return 'give the value either as VALUE or with --file PATH';
  if (file !== undefined) return file === '-' ? { kind: 'stdin' } : { kind: 'file', path: file };
  if (value === '-') return { kind: 'stdin' };
  return { kind: 'arg', value: value ?? '' };
}

/** Reads `input` to its end; rejects with `tooLarge` once it passes `KV_VALUE_BYTES_MAX` bytes. */
async function readBounded(input: Readable, what: string): Promise<Uint8Array> {
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of input) {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer);
      total += b.length;
      if (total > KV_VALUE_BYTES_MAX) throw tooLarge(what, `more than ${KV_VALUE_BYTES_MAX}`);
      chunks.push(b);
    }
  } catch (e) {
    if (e instanceof ValueInputError) throw e;
    throw new ValueInputError(`cannot read ${what}: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    input.destroy();
  }
  return new Uint8Array(Buffer.concat(chunks, total));
}

/** The value of `source`: the argument as text, or the bytes of the file or stdin. */
export async function loadValue(source: ValueSource, stdin: Readable = process.stdin): Promise<string | Uint8Array> {
  switch (source.kind) {
    case 'arg':
      return source.value;
    case 'stdin':
      return readBounded(stdin, 'stdin');
    case 'file': {
      const what = source.path;
      const st = await stat(what).catch((e: unknown) => {
        throw new ValueInputError(`cannot read ${what}: ${e instanceof Error ? e.message : String(e)}`);
      });
      if (st.isDirectory()) throw new ValueInputError(`cannot read ${what}: it is a directory`);
      if (st.isFile() && st.size > KV_VALUE_BYTES_MAX) throw tooLarge(what, String(st.size));
      return readBounded(createReadStream(what), what);
    }
  }
}
