/// The pipeline `skipd run` runs when given no file: skipd's main job on the plaza clip that `scripts/setup`
/// fetches — faces found with CenterFace under skip-convolutions and the resolution policy, at twice the clip's size
/// (its faces are 8–10 px at 768×576), written as JSON lines and drawn into a video. Same text as
/// `pipelines/vtest-faces.pipeline`.
enum DefaultPipeline {
    static let name = "<default: vtest faces>"
    /// Where it writes; `skipd run` creates the directory.
    static let outputDirectory = "out"
    static let text = """
        # Embedded default: faces on the plaza camera (assets/vtest.avi) at 1536x1152, drawn into out/vtest-faces.mp4
        filesrc location=assets/vtest.avi ! decodebin ! videoconvert ! videoscale
          ! video/x-raw,format=RGB,width=1536,height=1152
          ! residual threshold=12 block=16
          ! gate min-changed=0.002 refresh=300
          ! policy
          ! skipconv model=assets/centerface.onnx input-threshold=8 context=16 rolling-refresh=30 threads=2
          ! centerface
          ! overlay
          ! jsonsink location=out/vtest-faces.jsonl
          ! videoconvert ! video/x-raw,format=I420 ! x264enc speed-preset=veryfast ! mp4mux
          ! filesink location=out/vtest-faces.mp4
        """
}
