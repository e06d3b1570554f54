import FerryFuzz
import Foundation

// Built by scripts/fuzz.sh with -DFERRY_FUZZ, libFuzzer supplies main; a
// plain `swift build` gets this one, which replays files given as arguments.
#if !FERRY_FUZZ
    @main
    enum Standalone {
        static func main() {
            exit(FuzzHarness.standalone("FuzzEnvelope"))
        }
    }
#endif
