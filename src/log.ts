import pino from 'pino';
import pretty from 'pino-pretty';

/**
 * The process logger (pino). JSON lines by default, for log pipelines; plain coloured lines when
 * `SKEIN_LOG_FORMAT=text` or when stderr is a terminal. Level from `SKEIN_LOG_LEVEL` (default info).
 * Logs go to stderr so that commands like `skein translate` keep stdout for their output.
 */
export type Logger = pino.Logger;

export function createLogger(name = 'skein'): Logger {
  const level = process.env['SKEIN_LOG_LEVEL'] ?? 'info';
  const format = process.env['SKEIN_LOG_FORMAT'] ?? (process.stderr.isTTY ? 'text' : 'json');
  const options = { name, level, base: null, timestamp: pino.stdTimeFunctions.isoTime };
  if (format === 'text') {
    return pino(options, pretty({ destination: 2, sync: true, ignore: 'name', translateTime: 'HH:MM:ss.l' }));
  }
  return pino(options, pino.destination({ fd: 2, sync: true }));
}

/** A logger that drops everything: for pure code under test. */
export const silentLogger: Logger = pino({ level: 'silent' });
