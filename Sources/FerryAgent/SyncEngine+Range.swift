import FerryCore
import FerryProtocol
import FerryStore
import Foundation

/// Download pages resumable by HTTP `Range` (SPEC §9.12), agent side: every
/// page is streamed into `download.partial` as it arrives; after a cut the
/// same page is asked from the bytes already held, and only those that are
/// missing travel again.
extension SyncEngine {
    /// Replica key: the page being received (`since`, ETag, length), JSON.
    static let partialKey = "download_partial"
    /// Replica key: set when a cut transfer still added bytes to the partial (progress, SPEC §9.9).
    static let partialGrewKey = "download_partial_grew"
    /// Bytes between fsyncs of the partial file.
    static let partialCheckpointBytes = 64 * 1024
    /// Largest page kept as a partial (SPEC §9.12).
    static let maxPartialBytes = 16 << 20

    struct PartialPage: Codable, Equatable {
        var since: UInt64
        var etag: String
        var length: Int
    }

    /// A page as received: the whole envelope, whether bytes of it came from
    /// an earlier, cut transfer, and how many bytes this request carried.
    struct FetchedPage {
        var answer: HubAnswer
        var resumed: Bool
        var received: Int
    }

    struct RangeMismatch: Error, CustomStringConvertible {
        var description: String
    }

    var partialPath: String { home.directory + "/download.partial" }

    /// The partial page noted in the replica, if its record parses and is in bounds.
    func partialPage() -> PartialPage? {
        guard let text = try? store.meta(Self.partialKey),
            let p = try? JSONDecoder().decode(PartialPage.self, from: Data(text.utf8)),
            p.length > 0, p.length <= Self.maxPartialBytes
        else { return nil }
        return p
    }

    /// Forgets the partial page: its record, then its file.
    func dropPartial() {
        try? store.setMeta([Self.partialKey: nil])
        try? FileManager.default.removeItem(atPath: partialPath)
    }

    /// Bytes held in the partial file (0 when there is none).
    func partialHeld() -> Int {
        let size = (try? FileManager.default.attributesOfItem(atPath: partialPath)[.size] as? NSNumber)?.int64Value
        return Int(clamping: size ?? 0)
    }

    /// Whether a cut transfer in this round still added bytes (then cleared).
    func takePartialProgress() -> Bool {
        let grew = (try? store.meta(Self.partialGrewKey)) == "1"
        if grew { try? store.setMeta([Self.partialGrewKey: nil]) }
        return grew
    }

    /// Fetches the page at `since`: resumes the partial one with `Range` and
    /// `If-Range` when it is of this `since`, else asks for it whole. The
    /// answer's body is the whole page on `200` and on an assembled `206`;
    /// any other answer is returned as it came.
    /// - Throws: transport errors (the partial keeps what arrived), or
    ///   ``RangeMismatch`` when a `206` is not what was asked (the partial is dropped).
    func fetchPage(since: UInt64, path: String, headers: [String: String], maxBytes: Int, resume: Bool = true)
        async throws -> FetchedPage
    {
        var partial = partialPage()
        var held = 0
        if let p = partial {
            held = partialHeld()
            if !resume || p.since != since || held <= 0 || held >= p.length {
                dropPartial()
                partial = nil
                held = 0
            }
        }
        var h = headers
        if let p = partial {
            h["Range"] = "bytes=\(held)-"
            h["If-Range"] = p.etag
            logger.info(
                "resuming a download page",
                metadata: ["ferry.since": "\(since)", "ferry.offset": "\(held)/\(p.length)"])
        }
        let writer = PartialWriter(path: partialPath, checkpoint: Self.partialCheckpointBytes)
        var fresh: PartialPage?
        let a: HubAnswer
        do {
            a = try await client.stream(
                path, headers: h, expectedBytes: partial.map { $0.length - held } ?? maxBytes,
                maxBytes: Self.maxPartialBytes,
                onHead: { head in
                    if head.status == 206 {
                        // Only exactly the bytes asked for, of the page asked for, are taken.
                        guard let p = partial, head.etag == p.etag,
                            let r = head.contentRange.flatMap(ByteRange.parseContentRange),
                            r.first == held, r.last == p.length - 1, r.length == p.length
                        else {
                            throw RangeMismatch(
                                description:
                                    "asked bytes \(held)- of \(partial?.etag ?? "?"), got \(head.contentRange ?? "no Content-Range") of \(head.etag ?? "no ETag")"
                            )
                        }
                        try writer.open(append: true, limit: p.length - held)
                    } else if let etag = head.etag, let n = head.contentLength, n > 0, n <= Self.maxPartialBytes {
                        // A new page: its record first, so bytes on disk always have one.
                        let p = PartialPage(since: since, etag: etag, length: n)
                        try? FileManager.default.removeItem(atPath: partialPath)
                        try store.setMeta([
                            Self.partialKey: String(decoding: try JSONEncoder().encode(p), as: UTF8.self)
                        ])
                        fresh = p
                        try writer.open(append: false, limit: n)
                    } else {
                        // A hub without page resumes (no ETag): nothing to keep.
                        dropPartial()
                    }
                },
                onBytes: { bytes in try writer.write(bytes) },
                onCut: {
                    writer.close(sync: true)
                    if writer.written > 0 { try? store.setMeta([Self.partialGrewKey: "1"]) }
                })
        } catch let e as RangeMismatch {
            writer.close(sync: false)
            dropPartial()
            throw e
        } catch let e as PartialWriter.Overrun {
            writer.close(sync: false)
            dropPartial()
            throw RangeMismatch(description: e.description)
        }
        writer.close(sync: false)
        switch a.status {
        case 206:
            guard let p = partial, let whole = FileManager.default.contents(atPath: partialPath),
                whole.count == p.length
            else {
                dropPartial()
                throw RangeMismatch(description: "the resumed page did not add up to its length")
            }
            var assembled = a
            assembled.body = [UInt8](whole)
            return FetchedPage(answer: assembled, resumed: true, received: a.body.count)
        case 416 where partial != nil:
            // The hub's page is shorter than what is held: ask for it whole, once.
            dropPartial()
            return try await fetchPage(since: since, path: path, headers: headers, maxBytes: maxBytes, resume: false)
        case 200:
            if let p = fresh, a.body.count != p.length { dropPartial() }
            return FetchedPage(answer: a, resumed: false, received: a.body.count)
        default:
            return FetchedPage(answer: a, resumed: false, received: a.body.count)
        }
    }
}

/// Appends a page's bytes to the partial file, fsync'd every `checkpoint`
/// bytes and when a transfer breaks off (SPEC §9.12). Used by one request
/// at a time.
final class PartialWriter {
    struct Overrun: Error, CustomStringConvertible {
        var description: String
    }

    let path: String
    let checkpoint: Int
    private var handle: FileHandle?
    private var limit = 0
    private var sinceSync = 0
    /// Bytes written by this request.
    private(set) var written = 0

    init(path: String, checkpoint: Int) {
        self.path = path
        self.checkpoint = checkpoint
    }

    func open(append: Bool, limit: Int) throws {
        if !append || !FileManager.default.fileExists(atPath: path) {
            guard FileManager.default.createFile(atPath: path, contents: nil) else {
                throw Overrun(description: "cannot create \(path)")
            }
        }
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        try h.seekToEnd()
        handle = h
        self.limit = limit
    }

    func write(_ bytes: [UInt8]) throws {
        guard let handle else { return }
        // Never more than the page's length, whatever the hub sends.
        guard bytes.count <= limit - written else {
            throw Overrun(description: "the hub sent more than the page's length")
        }
        try handle.write(contentsOf: bytes)
        written += bytes.count
        sinceSync += bytes.count
        if sinceSync >= checkpoint {
            try handle.synchronize()
            sinceSync = 0
        }
    }

    func close(sync: Bool) {
        guard let h = handle else { return }
        if sync { try? h.synchronize() }
        try? h.close()
        handle = nil
    }
}
