import Foundation
import Hummingbird
import Synchronization

/// `skipd serve`'s HTTP API (Hummingbird): health, Prometheus metrics, pipeline status and restart, and the live
/// view (``LiveView``: a page, each pipeline's latest frame as JPEG and MJPEG).
///
/// ```
/// curl 127.0.0.1:8470/pipelines
/// curl -X POST -H 'Authorization: Bearer TOKEN' 10.0.0.5:8470/pipelines/door/restart
/// ```
/// | route | answer |
/// |---|---|
/// | `GET /live` | 200 while the process serves requests |
/// | `GET /ready` | 200 once the pipelines have started, 503 before and while stopping |
/// | `GET /metrics` | Prometheus text format |
/// | `GET /pipelines`, `GET /pipelines/{name}` | JSON status |
/// | `POST /pipelines/{name}/restart` | 202: the pipeline's stream ends cleanly and it is rebuilt at once |
/// | `GET /`, `GET /pipelines/{name}/frame.jpg`, `GET /pipelines/{name}/stream.mjpeg` | the live view |
///
/// Every error is JSON `{"error": "…"}`: 404 unknown route or pipeline, 405 (with `Allow`) a known route with
/// another method, 401 a missing or wrong bearer token (required for every route when `token` is set; the live
/// view's routes also take it as `?token=`).
public enum HTTPAPI {
    /// The routes, by path pattern (`*` one segment) and method: the 404/405 decision needs them.
    static let routes: [(path: [String], method: HTTPRequest.Method)] = [
        (["live"], .get), (["ready"], .get), (["metrics"], .get), (["pipelines"], .get), (["pipelines", "*"], .get),
        (["pipelines", "*", "restart"], .post), ([], .get), (["pipelines", "*", "frame.jpg"], .get),
        (["pipelines", "*", "stream.mjpeg"], .get),
    ]

    public static func router(
        fleet: PipelineFleet, metrics: FleetMetrics, readiness: Readiness, token: String,
        live: LiveViewSettings = LiveViewSettings()
    ) -> Router<APIRequestContext> {
        let router = Router(context: APIRequestContext.self)
        router.add(middleware: JSONErrors())
        if !token.isEmpty { router.add(middleware: BearerToken(token: token)) }
        router.get("live") { _, _ in try json(["status": "alive"]) }
        router.get("ready") { _, _ in
            let ready = Ready(ready: readiness.isReady, pipelines: await fleet.status().count)
            return try json(ready, status: ready.ready ? .ok : .serviceUnavailable)
        }
        router.get("metrics") { _, _ in
            let text = metrics.render(await fleet.status())
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: .init(byteBuffer: ByteBuffer(string: text)))
        }
        router.get("pipelines") { _, _ in try json(await fleet.status()) }
        router.get("pipelines/:name") { _, context in
            let name = try pipelineName(context)
            guard let row = await fleet.status().first(where: { $0.name == name }) else { throw noPipeline(name) }
            return try json(row)
        }
        router.post("pipelines/:name/restart") { _, context in
            let name = try pipelineName(context)
            guard await fleet.restart(name) else { throw noPipeline(name) }
            return try json(["restarting": name], status: .accepted)
        }
        LiveView.add(to: router, fleet: fleet, settings: live)
        return router
    }

    struct Ready: Encodable {
        var ready: Bool
        var pipelines: Int
    }

    static func noPipeline(_ name: String) -> HTTPError { HTTPError(.notFound, message: "no pipeline '\(name)'") }

    /// The `{name}` of a pipeline route, percent-decoded (file names may hold spaces; the page encodes them).
    static func pipelineName(_ context: APIRequestContext) throws -> String {
        let raw = try context.parameters.require("name")
        return raw.removingPercentEncoding ?? raw
    }

    static func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) throws -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var data = try encoder.encode(value)
        data.append(UInt8(ascii: "\n"))
        return Response(
            status: status, headers: [.contentType: "application/json"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// The methods `path` answers to (empty: no such route).
    static func methods(for path: String) -> [HTTPRequest.Method] {
        routes.filter { matches(path, $0.path) }.map(\.method)
    }

    /// Whether `path` is an instance of `pattern` (segments, `*` any one).
    static func matches(_ path: String, _ pattern: [String]) -> Bool {
        let segments =
            path.split(separator: "?", maxSplits: 1).first.map {
                $0.split(separator: "/").map(String.init)
            } ?? []
        return pattern.count == segments.count
            && zip(pattern, segments).allSatisfy { pattern, segment in pattern == "*" || pattern == segment }
    }
}
