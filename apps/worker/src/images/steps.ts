import { type ImageStep, shellQuote as quote } from "@skiff/protocol";

/** PATH in build steps and exported images: the mounted Node build first. */
export const PATH = "/.skiff/node/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/** The shell script of a step, or undefined for steps that only record metadata. */
export function stepScript(step: ImageStep): string | undefined {
  switch (step.kind) {
    case "apt":
      return [
        "set -e",
        "apt-get update -q",
        `apt-get install -y -q --no-install-recommends ${step.packages.map(quote).join(" ")}`,
        "rm -rf /var/lib/apt/lists/*",
      ].join("\n");
    case "npm":
      // Into /node_modules, where the function's bundle (under /.skiff) resolves bare imports. npm refuses
      // "/" as its prefix, so it installs into a scratch prefix that is then merged in.
      return [
        "set -e",
        "rm -rf /tmp/skiff-npm && mkdir -p /tmp/skiff-npm /node_modules && cd /tmp/skiff-npm",
        // A package.json here, or npm takes the nearest directory with node_modules (/) as its prefix.
        `echo '{"private":true}' > package.json`,
        `node /.skiff/npm/bin/npm-cli.js install --no-save --no-audit --no-fund --omit=dev ${step.packages.map(quote).join(" ")}`,
        "cp -a node_modules/. /node_modules/",
        "cd / && rm -rf /tmp/skiff-npm /root/.npm",
      ].join("\n");
    case "run":
      return ["set -e", ...step.commands].join("\n");
    case "env":
    case "workdir":
    case "copy":
    case "user":
      return undefined;
  }
}

/** A step as a build log shows it. */
export function describe(step: ImageStep): string {
  switch (step.kind) {
    case "apt":
      return `aptInstall ${step.packages.join(" ")}`;
    case "npm":
      return `npmInstall ${step.packages.join(" ")}`;
    case "run":
      return `runCommands ${step.commands.join(" && ")}`.slice(0, 120);
    case "env":
      return `env ${Object.keys(step.vars).join(" ")}`;
    case "workdir":
      return `workdir ${step.path}`;
    case "copy":
      return `copy ${step.target}`;
    case "user":
      return `user ${step.user}`;
  }
}
