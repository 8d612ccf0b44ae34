// weirctl: one subcommand per file (<name>_cmd.cpp). Each file registers
// itself at start-up with a static Registrar; its setup function adds the
// subcommand to the app and returns the function that runs it when chosen
// (that function returns the process exit code).
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <vector>

namespace weirctl {

using Runner = std::function<int()>;
using Setup = Runner (*)(CLI::App& app); ///< must add exactly one subcommand

inline std::vector<Setup>& registry()
{
    static std::vector<Setup> r;
    return r;
}

struct Registrar {
    explicit Registrar(Setup s) { registry().push_back(s); }
};

} // namespace weirctl
