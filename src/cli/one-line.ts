/**
 * node's parseArgs explains some mistakes over three lines, the fix in the last ("use
 * '--rate=-XYZ'"); a CLI error is one line on stderr, so join them and keep the fix.
 */
export function oneLine(message: string): string {
  return message
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '')
    .join(' ');
}
