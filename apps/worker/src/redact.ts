/**
 * A function that hides `values` (secret values) in a log line, longest first so that one value inside
 * another is hidden whole. Values shorter than 4 characters are left: hiding every "1" would hide nothing.
 */
export function redactor(values: Iterable<string>): (line: string) => string {
  const hidden = [...new Set(values)].filter((value) => value.length >= 4).sort((a, b) => b.length - a.length);
  if (hidden.length === 0) return (line) => line;
  return (line) => {
    let out = line;
    for (const value of hidden) if (out.includes(value)) out = out.replaceAll(value, "[secret]");
    return out;
  };
}
