import Hummingbird

/// Requires `Authorization: Bearer TOKEN` on every request. The live view's routes, which a browser opens by URL
/// (the page, an `<img>`, a player), also take `?token=TOKEN`; no other route does.
struct BearerToken<Context: RequestContext>: RouterMiddleware {
    let token: String

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        let given = request.headers[.authorization] ?? ""
        var allowed = Self.equal(given, "Bearer \(token)")
        if !allowed, LiveView.queryTokenRoutes.contains(where: { HTTPAPI.matches(request.uri.path, $0) }),
            let query = request.uri.queryParameters["token"]
        {
            allowed = Self.equal(String(query), token)
        }
        guard allowed else {
            throw HTTPError(
                .unauthorized, headers: [.wwwAuthenticate: "Bearer"], message: "missing or wrong bearer token")
        }
        return try await next(request, context)
    }

    /// Compares without returning early, so response times do not tell how much of a guess was right.
    static func equal(_ a: String, _ b: String) -> Bool {
        let (x, y) = (Array(a.utf8), Array(b.utf8))
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for k in 0..<max(x.count, y.count) {
            difference |= (k < x.count ? x[k] : 0) ^ (k < y.count ? y[k] : 0)
        }
        return difference == 0
    }
}
