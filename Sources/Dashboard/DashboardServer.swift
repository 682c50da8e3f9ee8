// DashboardServer: the live dashboard's HTTP server (Hummingbird) — the page,
// the JSON it polls, and a trial's answers — started in the background of the
// calling process (`factsweep serve`, or `factsweep run --serve` beside the
// coordinator). It reads run.db through a read-only connection and has no
// authentication: it binds loopback unless told otherwise (docs/security.md).
import Foundation
import Hummingbird
import Logging

/// Serves a `DashboardReader` over HTTP.
public enum DashboardServer {
    /// Whether `host` is a loopback address, the only kind served without `allowNonLoopback`: `localhost`,
    /// `::1` (bracketed or not) or an IPv4 literal in 127.0.0.0/8 — parsed, so that a name such as
    /// `127.example.org`, which may resolve anywhere, is not one.
    public static func isLoopback(_ host: String) -> Bool {
        let bare = host.hasPrefix("[") && host.hasSuffix("]") ? String(host.dropFirst().dropLast()) : host
        if bare.lowercased() == "localhost" || bare == "::1" { return true }
        var address = in_addr()
        guard inet_pton(AF_INET, bare, &address) == 1 else { return false }
        return UInt32(bigEndian: address.s_addr) >> 24 == 127
    }

    /// The host part of an HTTP authority (`host`, `host:port`, `[v6]` or `[v6]:port`).
    static func hostname(ofAuthority authority: String) -> String {
        if authority.hasPrefix("["), let close = authority.firstIndex(of: "]") {
            return String(authority[...close])
        }
        return String(authority.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? "")
    }

    /// Why a dashboard did not start.
    public struct StartError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Starts serving `reader` on `host:port` (port 0: any free port) and returns the page's URL once the
    /// socket listens. The server runs until the process exits. Refuses a non-loopback `host` unless
    /// `allowNonLoopback`: anyone who reaches the port reads the run.
    public static func start(_ reader: DashboardReader, host: String, port: Int, allowNonLoopback: Bool = false,
                             logger: Logger) throws -> URL {
        guard isLoopback(host) || allowNonLoopback else {
            throw StartError(description: "\(host) is not a loopback address: the dashboard has no authentication, so anyone "
                             + "reaching it reads the run; pass --allow-non-loopback to serve it there anyway (docs/security.md)")
        }
        guard (0...65535).contains(port) else { throw StartError(description: "port \(port) is not in 0…65535") }
        if !isLoopback(host) {
            logger.warning("serving the dashboard beyond this machine, without authentication", metadata: ["bind": "\(host)"])
        }
        let listening = ListeningPort()
        let app = Application(
            router: routes(reader, loopbackHostsOnly: isLoopback(host), logger: logger),
            configuration: .init(address: .hostname(host, port: port), serverName: "factsweep"),
            onServerRunning: { channel in listening.resolve(channel.localAddress?.port) },
            logger: logger)
        Task.detached {
            do { try await app.run() } catch { listening.fail(error) }
        }
        let bound = try listening.wait(seconds: 30)
        let shownHost = host.contains(":") ? "[\(host)]" : host
        guard let url = URL(string: "http://\(shownHost):\(bound)/") else {
            throw StartError(description: "cannot form a URL for \(host):\(bound)")
        }
        logger.info("dashboard listening", metadata: ["url": "\(url)", "database": "\(reader.path)"])
        return url
    }

    /// The dashboard's routes; with `loopbackHostsOnly`, behind `LoopbackHostOnly` (a router's middleware
    /// applies to the routes added after it).
    static func routes(_ reader: DashboardReader, loopbackHostsOnly: Bool, logger: Logger) -> Router<BasicRequestContext> {
        let router = Router()
        if loopbackHostsOnly { router.add(middleware: LoopbackHostOnly()) }
        router.get("/") { request, _ in
            // The first state is in the page, so it shows the run before its first poll. A filter too long to
            // run is left out of it; the page's polls then show the server's refusal.
            let state = try reader.state(filter: trialFilter(request) ?? "")
            return response(DashboardPage.html(initialState: try DashboardPage.json(state)), type: "text/html; charset=utf-8")
        }
        router.get("/api/state") { request, _ in
            guard let filter = trialFilter(request) else { return filterTooLong }
            do { return response(try DashboardPage.json(try reader.state(filter: filter)), type: "application/json") } catch {
                logger.warning("cannot read the run database", metadata: ["error": "\(error)"])
                return response(Data(#"{"error":"cannot read the run database"}"#.utf8), type: "application/json",
                                status: .serviceUnavailable)
            }
        }
        router.get("/api/trials/{key}") { _, context in
            let key = try context.parameters.require("key")
            guard let answers = try reader.answers(of: key) else {
                return response(Data(#"{"error":"no such trial"}"#.utf8), type: "application/json", status: .notFound)
            }
            return response(try DashboardPage.json(answers), type: "application/json")
        }
        return router
    }

    /// The longest trial filter a request may give, in Unicode scalars: every poll matches it against every
    /// trial. The page's box (`maxlength`, counted in UTF-16 units, never fewer than scalars) cannot exceed it.
    static let maximumFilterLength = 200

    /// The request's `filter` query parameter, percent-decoded (a "+" stays a "+"; empty when absent); nil
    /// when longer than `maximumFilterLength`.
    static func trialFilter(_ request: Request) -> String? {
        let filter = request.uri.queryParameters.get("filter") ?? ""
        return filter.unicodeScalars.count <= maximumFilterLength ? filter : nil
    }

    static var filterTooLong: Response {
        response(Data(#"{"error":"the filter is longer than \#(maximumFilterLength) characters"}"#.utf8), type: "application/json",
                 status: .badRequest)
    }

    private static func response(_ body: Data, type: String, status: HTTPResponse.Status = .ok) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = type
        headers[.cacheControl] = "no-store"
        headers[.xContentTypeOptions] = "nosniff"
        // Everything is inline and same-origin; nothing may be loaded from elsewhere.
        headers[.contentSecurityPolicy] = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            + "img-src data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}

/// On a loopback bind, answers 421 to a request whose Host is not a loopback name. The dashboard has no
/// authentication and trusts loopback: a web page the user opens elsewhere can point its own name at
/// 127.0.0.1 (DNS rebinding) and then read the run as its own origin; its requests carry that name as Host.
struct LoopbackHostOnly<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let authority = request.head.authority, DashboardServer.isLoopback(DashboardServer.hostname(ofAuthority: authority)) else {
            context.logger.warning("refused a request for another host name (DNS rebinding?)",
                                   metadata: ["host": "\(request.head.authority ?? "none")"])
            return Response(status: .misdirectedRequest, headers: [.contentType: "text/plain; charset=utf-8"],
                            body: .init(byteBuffer: ByteBuffer(string: "this dashboard answers only to a loopback host name\n")))
        }
        return try await next(request, context)
    }
}

/// The bound port, handed from the server's task to the thread that started it.
private final class ListeningPort: @unchecked Sendable {
    private let lock = NSLock()
    private let ready = DispatchSemaphore(value: 0)
    private var result: Result<Int, any Error>?

    func resolve(_ port: Int?) {
        finish(port.map { .success($0) } ?? .failure(DashboardServer.StartError(description: "the server reported no port")))
    }

    func fail(_ error: any Error) { finish(.failure(error)) }

    private func finish(_ outcome: Result<Int, any Error>) {
        let first = lock.withLock {
            guard result == nil else { return false }
            result = outcome
            return true
        }
        if first { ready.signal() }
    }

    func wait(seconds: Double) throws -> Int {
        guard ready.wait(timeout: .now() + seconds) == .success else {
            throw DashboardServer.StartError(description: "the server did not start listening within \(Int(seconds)) s")
        }
        guard let outcome = lock.withLock({ result }) else {
            throw DashboardServer.StartError(description: "the server signalled without a result")
        }
        return try outcome.get()
    }
}
