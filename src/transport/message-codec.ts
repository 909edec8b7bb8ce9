/**
 * MessagePack message codecs for peer protocols (pure: msgpackr is a pure-JS library here; no
 * I/O).
 *
 * `msgpackCodec(validate)` gives a `Codec<M>` whose `decode` is total over arbitrary bytes: it
 * returns a validated `M` or throws `DecodeError`, never anything else, and never allocates much
 * more than its input. The three gates, in order:
 *
 * 1. size: more than `FRAME_PAYLOAD_BYTES_MAX` bytes is `MESSAGE_TOO_LARGE` before any parsing;
 * 2. syntax: any exception from msgpackr (truncation, unknown extension, a length header past
 *    the end of the input, stack exhaustion from deep nesting) becomes `MESSAGE_MALFORMED`;
 * 3. shape: `validate` checks the decoded value and throws `MESSAGE_INVALID` naming the field
 *    (see `message-fields.ts`); any other exception from it is wrapped the same way.
 *
 * Why hostile headers are cheap: msgpackr 2.x checks every declared string, binary and
 * extension length against the bytes remaining before reading, and charges array and map
 * headers against an allocation budget equal to the input size, so an array header declaring
 * 2^32 elements inside a 10-byte input fails at once without allocating (the tests prove it).
 */
import { Packr } from 'msgpackr';
import { CohortError, DecodeError } from '../lib/errors.js';
import { FRAME_PAYLOAD_BYTES_MAX } from '../constants.js';
import type { Codec } from './transport.js';

/** Raised by `encode` when a message encodes to more than the payload limit: a protocol bug. */
export class MessageTooLargeError extends CohortError {
  override readonly name = 'MessageTooLargeError';
}

/** Options of `msgpackCodec`. */
export interface MsgpackCodecOptions {
  /** Largest encoded message in bytes; defaults to (and may not exceed) `FRAME_PAYLOAD_BYTES_MAX`. */
  readonly payloadBytesMax?: number;
}

/**
 * msgpackr settings: plain maps as objects (no record extension, whose structure definitions
 * would be state shared across messages), 64-bit integers as numbers (a value beyond 2^53
 * rounds to at least 2^53, which is not a safe integer, so integer validators still reject it),
 * and byte fields copied out of the frame so a
 * retained field never pins a whole received batch in memory.
 */
function makePackr(): Packr {
  return new Packr({
    useRecords: false,
    mapsAsObjects: true,
    int64AsType: 'number',
    copyBuffers: true,
    moreTypes: false,
    structuredClone: false,
  });
}

/**
 * A codec for messages of type `M` using MessagePack, with `validate` as the shape check.
 * `validate` receives the decoded value and must return a typed `M` or throw `DecodeError`
 * (`MESSAGE_INVALID`); the helpers in `message-fields.ts` do that.
 *
 * `encode` throws `MessageTooLargeError` (`MESSAGE_TOO_LARGE`) when the encoding exceeds the
 * limit: protocols bound their messages, so this is a bug to fix, not a condition to handle.
 * The returned bytes are never overwritten by later calls.
 */
export function msgpackCodec<M>(validate: (value: unknown) => M, options: MsgpackCodecOptions = {}): Codec<M> {
  const payloadBytesMax = options.payloadBytesMax ?? FRAME_PAYLOAD_BYTES_MAX;
  if (!Number.isInteger(payloadBytesMax) || payloadBytesMax < 1 || payloadBytesMax > FRAME_PAYLOAD_BYTES_MAX) {
    throw new CohortError(
      'CONFIG_INVALID',
      `payloadBytesMax must be an integer in [1, ${FRAME_PAYLOAD_BYTES_MAX}], got ${payloadBytesMax}`,
    );
  }
  const packr = makePackr();
  return {
    encode(message: M): Uint8Array {
      const bytes: Uint8Array = packr.pack(message);
      if (bytes.length > payloadBytesMax) {
        throw new MessageTooLargeError(
          'MESSAGE_TOO_LARGE',
          `message encodes to ${bytes.length} bytes; the limit is ${payloadBytesMax}: split it or bound it in the protocol`,
        );
      }
      return bytes;
    },
    decode(bytes: Uint8Array): M {
      if (bytes.length > payloadBytesMax)
        throw new DecodeError(
          'MESSAGE_TOO_LARGE',
          `message of ${bytes.length} bytes exceeds the limit of ${payloadBytesMax}`,
        );
      if (bytes.length === 0) throw new DecodeError('MESSAGE_MALFORMED', 'empty message');
      const value = unpackOrThrow(packr, bytes);
      return validateOrThrow(validate, value);
    },
  };
}

function unpackOrThrow(packr: Packr, bytes: Uint8Array): unknown {
  try {
    return packr.unpack(bytes) as unknown;
  } catch (cause) {
    throw new DecodeError('MESSAGE_MALFORMED', `malformed MessagePack: ${errorText(cause)}`, { cause });
  }
}

function validateOrThrow<M>(validate: (value: unknown) => M, value: unknown): M {
  try {
    return validate(value);
  } catch (cause) {
    if (cause instanceof DecodeError) throw cause;
    // A validator is supposed to raise only DecodeError; anything else still must not escape a
    // decoder as a crash, since the bytes came from outside the process.
    throw new DecodeError('MESSAGE_INVALID', `message failed validation: ${errorText(cause)}`, { cause });
  }
}

function errorText(e: unknown): string {
  const text = e instanceof Error ? e.message : String(e);
  return text.length > 120 ? `${text.slice(0, 120)}…` : text;
}
