/// Just enough gzip for the simulator to play an upstream that compresses: RFC 1952 framing around deflate
/// "stored" blocks (RFC 1951 §3.2.4), which any gzip reader decodes. No compression is needed to show what a
/// reader that cannot decode gzip does with it.
enum Gzip {
    static func stored(_ data: [UInt8]) -> [UInt8] {
        var out: [UInt8] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff]
        var rest = data[...]
        repeat {
            let block = rest.prefix(65_535)
            rest = rest.dropFirst(block.count)
            let n = UInt16(block.count)
            out.append(rest.isEmpty ? 1 : 0)  // BFINAL on the last block, BTYPE 00 (stored)
            out += [UInt8(n & 0xff), UInt8(n >> 8), UInt8(~n & 0xff), UInt8(~n >> 8)]
            out += block
        } while !rest.isEmpty
        for v in [crc32(data), UInt32(truncatingIfNeeded: data.count)] {
            out += [UInt8(v & 0xff), UInt8((v >> 8) & 0xff), UInt8((v >> 16) & 0xff), UInt8(v >> 24)]
        }
        return out
    }

    static func crc32(_ data: [UInt8]) -> UInt32 {
        var c: UInt32 = 0xffff_ffff
        for b in data {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c >> 1) ^ (c & 1 == 1 ? 0xedb8_8320 : 0) }
        }
        return ~c
    }
}
