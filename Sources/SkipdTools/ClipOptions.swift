import ArgumentParser

/// The options every lab tool shares: the model, the clip it runs on and the BLAS threads.
struct ClipOptions: ParsableArguments {
    @Option(help: "ONNX model (CenterFace for the face tools).") var model: String
    @Option(help: "Video file (a clip from the camera the result is for).") var video: String
    @Option(help: "BLAS threads, for every engine the tool runs.") var threads = 1
}
