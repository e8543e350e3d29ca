export { type BuiltImage, ImageBuildError, ImageBuilder, type ImageBuilderOptions } from "./builder.js";
export { imageContainerSpec } from "./container.js";
export { describe } from "./steps.js";
