/// The pipeline `skipd run` runs when given no file: the plaza clip that `scripts/setup` fetches, residual
/// statistics only. Same text as `pipelines/vtest-residual.pipeline`.
enum DefaultPipeline {
    static let name = "<default: vtest residual>"
    static let text = """
        # Embedded default: the plaza camera (assets/vtest.avi), residual statistics only
        filesrc location=assets/vtest.avi ! decodebin ! videoconvert ! video/x-raw,format=RGB
          ! residual threshold=12 block=16
          ! gate min-changed=0.002
          ! jsonsink location=out/vtest.jsonl
        """
}
