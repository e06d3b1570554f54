import FerryCore
import FerryProtocol
import Testing

struct SmokeProtocolTests {
    @Test func emptyBodyRoundTrips() throws {
        let body = ChangeSetBody()
        #expect(try BodyCodec.decode(BodyCodec.encode(body)) == body)
    }
}
