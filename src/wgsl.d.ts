// .wgsl files are imported as text; the build (esbuild) and the tests (vitest) embed them.
declare module '*.wgsl' {
  const source: string;
  export default source;
}
