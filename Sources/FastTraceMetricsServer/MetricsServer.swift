// The HTTP side of `--metrics-listen`: SwiftNIO's HTTP/1.1 server on one event-loop thread of its own,
// answering `GET /metrics` with the registry's exposition text. The engine never waits for it: rendering
// copies the registry's store under its lock and writes outside it. A request NIO's parser cannot read
// gets a 400 (NIO's protocol error handler) and is counted; another path or method gets a 404 or 405 and
// is counted; a connection idle for `idleTimeout` is closed, so idle clients cannot pile up for good.

import NIOCore
import NIOHTTP1
import NIOPosix

/// A running metrics endpoint.
public final class MetricsServer: Sendable {
    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    /// The address and port it listens on (the port the kernel chose for port 0).
    public let boundAddress: String

    /// Idle connections are closed after this long.
    public static let idleTimeout = TimeAmount.seconds(30)

    /// Serves `metrics` on `socket`, a stream socket already bound and listening (the CLI binds it before
    /// it drops its capabilities, so root can use a port below 1024). Takes the descriptor over.
    public init(boundSocket socket: Int32, metrics: RunMetrics) throws {
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let bootstrap = Self.bootstrap(group, metrics)
        do {
            channel = try bootstrap.withBoundSocket(socket).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        boundAddress = channel.localAddress.map { address in
            let ip = address.ipAddress ?? "?"
            return (ip.contains(":") ? "[\(ip)]" : ip) + ":\(address.port ?? 0)"
        } ?? "?"
    }

    private static func bootstrap(_ group: MultiThreadedEventLoopGroup, _ metrics: RunMetrics) -> ServerBootstrap {
        ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 256)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let sync = channel.pipeline.syncOperations
                    try sync.addHandler(IdleStateHandler(readTimeout: Self.idleTimeout))
                    try sync.configureHTTPServerPipeline(withErrorHandling: true)
                    try sync.addHandler(MetricsHandler(metrics: metrics))
                }
            }
            .childChannelOption(.maxMessagesPerRead, value: 1)
    }

    /// Stops listening and closes every connection.
    public func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

/// Answers one HTTP request at a time on a connection.
final class MetricsHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let metrics: RunMetrics
    private var head: HTTPRequestHead?
    /// The connection's bad request is counted once, however many errors the parser raises for it.
    private var errorCounted = false

    init(metrics: RunMetrics) { self.metrics = metrics }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch Self.unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break  // a body to /metrics is read and ignored
        case .end:
            guard let head else { return }
            self.head = nil
            respond(context, head)
        }
    }

    private func respond(_ context: ChannelHandlerContext, _ head: HTTPRequestHead) {
        // The absolute form (`GET http://host:port/metrics`), which HTTP/1.1 servers must take, names the
        // same path.
        var uri = Substring(head.uri)
        for scheme in ["http://", "https://"] where uri.lowercased().hasPrefix(scheme) {
            uri = uri.dropFirst(scheme.count)
            uri = uri.firstIndex(of: "/").map { uri[$0...] } ?? "/"
        }
        let path = uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        var status = HTTPResponseStatus.ok
        var body: [UInt8]
        var contentType = "text/plain; version=0.0.4; charset=utf-8"
        var headers = HTTPHeaders()
        if head.method != .GET && head.method != .HEAD {
            status = .methodNotAllowed
            body = Array("GET /metrics\n".utf8)
            contentType = "text/plain; charset=utf-8"
            headers.add(name: "Allow", value: "GET, HEAD")
            metrics.countBadRequest()
        } else if path != "/metrics" {
            status = .notFound
            body = Array("fasttrace serves /metrics\n".utf8)
            contentType = "text/plain; charset=utf-8"
            metrics.countBadRequest()
        } else {
            body = metrics.render()
        }
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.count))
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        context.write(Self.wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status,
            headers: headers))), promise: nil)
        if head.method != .HEAD {
            context.write(Self.wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))),
                promise: nil)
        }
        let done = context.writeAndFlush(Self.wrapOutboundOut(.end(nil)))
        if !keepAlive {
            done.assumeIsolated().whenComplete { _ in context.close(promise: nil) }
        }
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        // NIO's protocol error handler has answered 400 already; count it and hang up.
        if error is HTTPParserError && !errorCounted {
            errorCounted = true
            metrics.countBadRequest()
        }
        context.close(promise: nil)
    }
}
