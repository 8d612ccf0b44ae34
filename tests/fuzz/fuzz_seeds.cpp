// Writes fuzz seeds for decoder_fuzz from real captures: for each frame, a
// file holding the link type's index byte followed by the frame bytes.
//   fuzz_seeds <out-dir> <frames-per-capture> <capture>...
#include "fuzz_linktypes.hpp"

#include <pcap/pcap.h>

#include <cstdio>
#include <cstdlib>
#include <string>

int main(int argc, char** argv)
{
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s <out-dir> <frames-per-capture> <capture>...\n", argv[0]);
        return 2;
    }
    const std::string out = argv[1];
    const long per_file = std::strtol(argv[2], nullptr, 10);
    long written = 0;
    for (int i = 3; i < argc; ++i) {
        char err[PCAP_ERRBUF_SIZE] = {};
        pcap_t* pc = pcap_open_offline(argv[i], err);
        if (!pc) {
            std::fprintf(stderr, "skip %s: %s\n", argv[i], err);
            continue;
        }
        const int idx = weir::fuzz::linktype_index(static_cast<uint32_t>(pcap_datalink(pc)));
        if (idx < 0) {
            std::fprintf(stderr, "skip %s: link type %d not fuzzed\n", argv[i], pcap_datalink(pc));
            pcap_close(pc);
            continue;
        }
        pcap_pkthdr* h;
        const u_char* data;
        for (long n = 0; n < per_file && pcap_next_ex(pc, &h, &data) == 1; ++n) {
            const std::string path = out + "/seed-" + std::to_string(i) + "-" + std::to_string(n);
            FILE* f = std::fopen(path.c_str(), "wb");
            if (!f) {
                std::perror(path.c_str());
                return 1;
            }
            const unsigned char lt = static_cast<unsigned char>(idx);
            std::fwrite(&lt, 1, 1, f);
            std::fwrite(data, 1, h->caplen, f);
            std::fclose(f);
            ++written;
        }
        pcap_close(pc);
    }
    std::printf("%ld seeds in %s\n", written, out.c_str());
    return 0;
}
