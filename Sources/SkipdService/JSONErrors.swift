import Hummingbird

/// Every error as JSON `{"error": "…"}`; the router's bare 404 becomes 405 with `Allow` when the path is a route
/// for other methods.
struct JSONErrors<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        do {
            return try await next(request, context)
        } catch let error as HTTPError {
            var status = error.status
            var headers = error.headers
            var message = error.body ?? status.reasonPhrase
            if status == .notFound, error.body == nil {
                let allowed = HTTPAPI.methods(for: request.uri.path)
                if allowed.isEmpty {
                    message = "no route \(request.uri.path)"
                } else {
                    status = .methodNotAllowed
                    headers[.allow] = allowed.map(\.rawValue).joined(separator: ", ")
                    message = "\(request.method.rawValue) is not allowed on \(request.uri.path)"
                }
            }
            var response = try HTTPAPI.json(["error": message], status: status)
            response.headers.append(contentsOf: headers)
            return response
        }
    }
}
