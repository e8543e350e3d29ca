export { type BuiltImage, ImageBuildError, ImageBuilder, type ImageBuilderOptions } from "./builder.js";
export { describe } from "./steps.js";
