import PipelineKit
import SkipNet

// Errors of the stages' own configuration and models: a rebuild would meet them again, so a supervised pipeline
// that meets one is `failed`, not retried (a model that rejects the frame size, a stage placed where it cannot run).
extension ModelError: ConfigurationError {}
extension PolicyError: ConfigurationError {}
extension GateError: ConfigurationError {}
extension FusionError: ConfigurationError {}
extension CenterFaceError: ConfigurationError {}
extension DetectError: ConfigurationError {}
extension TrackError: ConfigurationError {}
extension MQTTError: ConfigurationError {}
