/** Where a resource lives: a workspace and one of its environments. */
export interface Scope {
  workspace: string;
  env: string;
}
