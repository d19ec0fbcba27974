/// An error no rebuild can cure: a model that rejects the frame size, a stage configured in a way that cannot run.
/// A supervisor puts its pipeline in `failed` with the message instead of rebuilding it forever; a camera that is
/// away (GStreamer errors, silence) stays an outage that is retried.
public protocol ConfigurationError: Error {}
