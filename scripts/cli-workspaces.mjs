// The workspaces bundled into dist/cli.mjs: their third-party dependencies stay external to it (see
// scripts/build.mjs) and are the packed CLI's dependencies (see scripts/pack.mjs).
export const CLI_WORKSPACES = [
  "apps/host",
  "packages/cli",
  "packages/sdk",
  "packages/protocol",
  "apps/server",
  "apps/worker",
  "internal/store",
  "internal/blob",
];
