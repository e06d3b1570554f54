import Testing

struct StorePlaceholderTests {
    @Test func placeholder() { #expect(1 + 1 == 2) }
}
