import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import PipelineKit
import Testing

@testable import SkipdService

/// The HTTP API's routes and middleware in process (Hummingbird's test client, no socket): status codes, JSON
/// errors, `Allow` on a wrong method, the bearer token, readiness. `HTTPAPITests` runs the same against a real
/// `skipd serve` with real pipelines.
@Suite struct HTTPRoutesTests {
    private func app(token: String = "", ready: Bool = true) throws -> some ApplicationProtocol {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("routes-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let fleet = PipelineFleet(
            directory: dir.path, settings: PipelineSupervisor.Settings(), logger: Logger(label: "test"))
        let readiness = Readiness()
        readiness.set(ready)
        return Application(
            router: HTTPAPI.router(fleet: fleet, metrics: FleetMetrics(), readiness: readiness, token: token))
    }

    private func json(_ buffer: ByteBuffer) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(buffer.readableBytesView)) as? [String: Any])
    }

    @Test func routesAnswerAndErrorsAreJSON() async throws {
        try await app().test(.router) { client in
            do {
                let response = try await client.execute(uri: "/live", method: .get)
                #expect(response.status == .ok)
                #expect(try json(response.body)["status"] as? String == "alive")
            }
            do {
                let response = try await client.execute(uri: "/pipelines", method: .get)
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).trimmingCharacters(in: .whitespacesAndNewlines) == "[]")
            }
            do {
                let response = try await client.execute(uri: "/nope", method: .get)
                #expect(response.status == .notFound)
                #expect(try json(response.body)["error"] as? String == "no route /nope")
            }
            do {
                let response = try await client.execute(uri: "/pipelines/door", method: .get)
                #expect(response.status == .notFound)
                #expect(try json(response.body)["error"] as? String == "no pipeline 'door'")
            }
            do {
                let response = try await client.execute(uri: "/pipelines/door/restart", method: .get)
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "POST")
                #expect((try json(response.body)["error"] as? String)?.contains("GET is not allowed") == true)
            }
            do {
                let response = try await client.execute(uri: "/metrics", method: .get)
                #expect(response.status == .ok)
                // No pipeline, no series yet: an empty exposition in Prometheus's text format.
                #expect(response.headers[.contentType]?.hasPrefix("text/plain") == true)
            }
        }
    }

    @Test func notReadyIs503() async throws {
        try await app(ready: false).test(.router) { client in
            do {
                let response = try await client.execute(uri: "/ready", method: .get)
                #expect(response.status == .serviceUnavailable)
            }
        }
    }

    @Test func aTokenGuardsEveryRoute() async throws {
        try await app(token: "s3cret").test(.router) { client in
            for (header, status) in [(nil, HTTPResponse.Status.unauthorized), ("Bearer wrong", .unauthorized)] {
                var headers = HTTPFields()
                if let header { headers[.authorization] = header }
                do {
                    let response = try await client.execute(uri: "/live", method: .get, headers: headers)
                    #expect(response.status == status)
                    #expect(response.headers[.wwwAuthenticate] == "Bearer")
                    #expect(try json(response.body)["error"] as? String == "missing or wrong bearer token")
                }
            }
            let allowed = try await client.execute(
                uri: "/live", method: .get, headers: [.authorization: "Bearer s3cret"])
            #expect(allowed.status == .ok)
        }
    }
}
