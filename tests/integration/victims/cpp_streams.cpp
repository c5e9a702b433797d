// Victim: C++ streams.  argv[1]: "sync" or "nosync"; argv[2]: "throw" to end
// with an uncaught exception.
#include <cstring>
#include <iostream>
#include <stdexcept>

int main(int argc, char **argv)
{
    bool sync = argc > 1 && std::strcmp(argv[1], "sync") == 0;
    std::ios::sync_with_stdio(sync);
    for (int e = 1; e <= 3; e++) {
        std::cout << "epoch " << e << " loss=" << 1.0 / e << std::endl;
        std::cerr << "progress " << e << "/3\n";
        std::cout << "val_acc: " << 0.5 + e / 10.0 << '\n';
    }
    std::cout << "bye" << std::flush;
    if (argc > 2 && std::strcmp(argv[2], "throw") == 0)
        throw std::runtime_error("diverged: loss is nan");
    std::cout << std::endl;
    return 0;
}
