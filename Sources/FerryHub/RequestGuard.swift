import FerryProtocol
import Foundation
import HTTPTypes
import NIOCore
import NIOHTTPTypes
import Synchronization

/// The hub's limits on what one HTTP client may hold (DESIGN §6): how long a
/// request head and body may take, how many connections may be open, and the
/// largest body any route accepts. Every refusal is a typed JSON error.
public struct ServerLimits: Sendable {
    /// A new connection must deliver a complete request head within this time.
    public var headTimeout: TimeAmount
    /// A request body must make progress (some bytes) at least this often…
    public var bodyIdleTimeout: TimeAmount
    /// …and arrive whole within this time (a 512 KiB change set at 64 kbit/s takes ~70 s).
    public var bodyTimeout: TimeAmount
    /// A keep-alive connection with no request in progress is closed after this time.
    public var idleTimeout: TimeAmount
    /// Open connections above this are answered 503 and closed.
    public var maxConnections: Int
    /// Uploads waiting for or holding the store's writer above this are answered 429.
    public var maxQueuedUploads: Int
    /// The largest body of any route (a change set envelope); larger `Content-Length` gets 413 at once.
    public var maxBodyBytes: Int

    public init(
        headTimeout: TimeAmount = .seconds(20), bodyIdleTimeout: TimeAmount = .seconds(30),
        bodyTimeout: TimeAmount = .seconds(300), idleTimeout: TimeAmount = .seconds(60), maxConnections: Int = 512,
        maxQueuedUploads: Int = 64, maxBodyBytes: Int = EnvelopeLimits.standard.maxEnvelopeBytes
    ) {
        self.headTimeout = headTimeout
        self.bodyIdleTimeout = bodyIdleTimeout
        self.bodyTimeout = bodyTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
        self.maxQueuedUploads = maxQueuedUploads
        self.maxBodyBytes = maxBodyBytes
    }

    public static let standard = ServerLimits()
}

/// Counts open connections across every channel of one server.
final class ConnectionCount: Sendable {
    private let open = Mutex(0)
    /// Counts a new connection; false when it is over `limit` (it is counted anyway until closed).
    func opened(limit: Int) -> Bool {
        open.withLock { n in
            n += 1; return n <= limit
        }
    }
    func closed() { open.withLock { $0 -= 1 } }
    var current: Int { open.withLock { $0 } }
}

/// A channel handler between the HTTP/1 codec and Hummingbird that enforces
/// ``ServerLimits`` per connection. It answers on its own (and closes) when a
/// head or body is too slow (408), a declared body is too large (413), or the
/// server has too many connections (503).
final class RequestGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    enum Phase {
        /// Waiting for a head; `served` says whether this connection already answered one.
        case waitingHead(since: NIODeadline, served: Bool)
        case readingBody(started: NIODeadline, lastProgress: NIODeadline)
        /// The request is with the router (or our own answer is being written).
        case handling
        case closed
    }

    let limits: ServerLimits
    let connections: ConnectionCount
    private var phase: Phase = .waitingHead(since: .now(), served: false)
    private var overLimit = false
    private var counted = false
    private var tick: Scheduled<Void>?

    init(limits: ServerLimits, connections: ConnectionCount) {
        self.limits = limits
        self.connections = connections
    }

    func handlerAdded(context: ChannelHandlerContext) {
        counted = true
        overLimit = !connections.opened(limit: limits.maxConnections)
        phase = .waitingHead(since: .now(), served: false)
        scheduleTick(context)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        tick?.cancel()
        tick = nil
        if counted {
            counted = false
            connections.closed()
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        phase = .closed
        tick?.cancel()
        tick = nil
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            if overLimit {
                return refuse(
                    context, .serviceUnavailable, code: "busy",
                    "the hub has too many open connections (\(limits.maxConnections)); retry in a minute")
            }
            if let declared = head.headerFields[.contentLength].flatMap({ UInt64($0) }),
                declared > UInt64(limits.maxBodyBytes)
            {
                return refuse(
                    context, .contentTooLarge, code: "too_large",
                    "the request body is \(declared) bytes, over the hub's limit of \(limits.maxBodyBytes)")
            }
            let now = NIODeadline.now()
            phase = .readingBody(started: now, lastProgress: now)
        case .body:
            if case .readingBody(let started, _) = phase {
                phase = .readingBody(started: started, lastProgress: .now())
            }
        case .end:
            if case .readingBody = phase { phase = .handling }
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data), case .handling = phase {
            phase = .waitingHead(since: .now(), served: true)
        }
        context.write(data, promise: promise)
    }

    private func scheduleTick(_ context: ChannelHandlerContext) {
        let loop = context.eventLoop.assumeIsolated()
        tick = loop.scheduleTask(in: .milliseconds(500)) { [self] in
            self.tick = nil
            self.check(context)
            if case .closed = self.phase { return }
            self.scheduleTick(context)
        }
    }

    private func check(_ context: ChannelHandlerContext) {
        let now = NIODeadline.now()
        switch phase {
        case .waitingHead(let since, let served):
            if served {
                // An idle keep-alive connection: close it quietly (a client may be about
                // to reuse it, and an unasked-for 408 would confuse it).
                if now - since > limits.idleTimeout {
                    phase = .closed
                    context.close(promise: nil)
                }
            } else if now - since > limits.headTimeout {
                refuse(
                    context, .requestTimeout, code: "request_timeout",
                    "no complete request head arrived within \(limits.headTimeout.nanoseconds / 1_000_000_000) s")
            }
        case .readingBody(let started, let last):
            if now - last > limits.bodyIdleTimeout {
                refuse(
                    context, .requestTimeout, code: "request_timeout",
                    "the request body stalled for \(limits.bodyIdleTimeout.nanoseconds / 1_000_000_000) s: send it again"
                )
            } else if now - started > limits.bodyTimeout {
                refuse(
                    context, .requestTimeout, code: "request_timeout",
                    "the request body did not arrive within \(limits.bodyTimeout.nanoseconds / 1_000_000_000) s: send a smaller one"
                )
            }
        case .handling, .closed:
            break
        }
    }

    /// Answers with a typed JSON error and closes the connection.
    private func refuse(
        _ context: ChannelHandlerContext, _ status: HTTPResponse.Status, code: String, _ message: String
    ) {
        phase = .closed
        let body = (try? HubJSON.encoder.encode(ErrorBody(error: .init(code: code, message: message)))) ?? Data()
        var fields = HTTPFields()
        fields[.contentType] = "application/json"
        fields[.contentLength] = String(body.count)
        fields[.connection] = "close"
        if status == .serviceUnavailable || status == .tooManyRequests { fields[.retryAfter] = "60" }
        context.write(wrapOutboundOut(.head(HTTPResponse(status: status, headerFields: fields))), promise: nil)
        context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(bytes: body))), promise: nil)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).assumeIsolated().whenComplete { _ in
            context.close(promise: nil)
        }
    }
}
