/** Error text for logs, bounded: msgpackr puts whole decoded values into some of its messages. */
export function shortMessage(err: unknown, maxChars = 300): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.length > maxChars ? `${text.slice(0, maxChars)}…` : text;
}
