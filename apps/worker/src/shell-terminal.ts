import { shellQuote as quote, type Terminal } from "@skiff/protocol";

/**
 * `command` run on a terminal of `tty`'s size inside the container. util-linux `script` makes a
 * pseudo-terminal in the container and relays it over the container's plain stdin and stdout, so line
 * editing, job control and full-screen programs work; `-e` passes the command's exit code on. An image
 * whose `script` is missing or not util-linux's gets the command on pipes, and is told so.
 */
export function onTerminal(command: string[], tty: Terminal): string[] {
  const exec = `exec ${command.map(quote).join(" ")}`;
  const inner = `stty rows ${tty.rows} cols ${tty.cols} 2>/dev/null; ${exec}`;
  return [
    "/bin/sh",
    "-c",
    `case "$(script -V 2>/dev/null)" in *util-linux*) exec script -qfec ${quote(inner)} /dev/null;; esac
echo 'skiff: the image has no util-linux script(1), so the shell runs without a terminal' >&2
${exec}`,
  ];
}

/** Sets the size of every terminal in the container (a shell's has one); its programs get SIGWINCH. */
export function resizeTerminal(rows: number, cols: number): string[] {
  return [
    "/bin/sh",
    "-c",
    `for t in /dev/pts/[0-9]*; do stty -F "$t" rows ${Math.trunc(rows)} cols ${Math.trunc(cols)}; done 2>/dev/null; true`,
  ];
}
