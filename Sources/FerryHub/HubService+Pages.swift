import FerryProtocol
import Foundation

/// Download pages kept for `Range` (SPEC §9.12): every `200` page gets a
/// strong ETag and is kept until acknowledged; a resume is answered from
/// the kept bytes.
extension HubService {
    /// Keeps a freshly sealed page and answers it whole (`200`, `ETag`, `Accept-Ranges`).
    func keptPage(agent: String, since: UInt64, envelope: [UInt8], headers: [String: String], nowMs: UInt64)
        -> HubReply
    {
        let etag = ByteRange.etag(envelope)
        pageCache.keep(
            PageCache.Page(agent: agent, since: since, etag: etag, bytes: envelope, headers: headers, storedMs: nowMs))
        var h = headers
        h["ETag"] = etag
        h["Accept-Ranges"] = "bytes"
        return HubReply(status: 200, contentType: "application/octet-stream", body: envelope, headers: h)
    }

    /// `206` with the asked bytes of a kept page, or `416` when they start past its end.
    func servedRange(_ kept: PageCache.Page, _ range: ByteRange) -> HubReply {
        let r: Range<Int>
        do throws(ByteRangeError) {
            r = try range.resolve(length: kept.bytes.count)
        } catch {
            var refused = HubReply.error(error.status, code: error.code.rawValue, error.message)
            refused.headers["Content-Range"] = ByteRange.unsatisfied(length: kept.bytes.count)
            refused.headers["ETag"] = kept.etag
            return refused
        }
        metrics.add("ferry_pull_ranges_total")
        metrics.add("ferry_pull_range_skipped_bytes_total", "", Double(r.lowerBound))
        logger.info(
            "page resumed by range",
            metadata: [
                "ferry.since": "\(kept.since)",
                "ferry.range": "\(r.lowerBound)-\(r.upperBound - 1)/\(kept.bytes.count)",
            ])
        var h = kept.headers
        h["ETag"] = kept.etag
        h["Accept-Ranges"] = "bytes"
        h["Content-Range"] = ByteRange.contentRange(r, length: kept.bytes.count)
        return HubReply(
            status: 206, contentType: "application/octet-stream", body: Array(kept.bytes[r]), headers: h)
    }
}
