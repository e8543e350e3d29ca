/** One word for POSIX sh, single-quoted: it reaches the command as is, whatever it holds. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", `'\\''`)}'`;
}
