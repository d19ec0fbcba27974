import Hummingbird
import NIOCore

/// Hummingbird's basic request context plus the request's connection: a live-view stream closes it when the
/// server shuts down, since a write to a client that stopped reading would otherwise never return and hold the
/// shutdown up.
public struct APIRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    let channel: any Channel

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}
