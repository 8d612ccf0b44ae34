// weirctl: configure NICs for capture and talk to a running weir.
// Subcommands live in <name>_cmd.cpp files (see commands.hpp).
#include "commands.hpp"

#include <cstdio>
#include <utility>
#include <vector>

int main(int argc, char** argv)
{
    CLI::App app{"weirctl: NIC setup and control of a running weir"};
    app.require_subcommand(1);
    std::vector<std::pair<CLI::App*, weirctl::Runner>> cmds;
    for (weirctl::Setup setup : weirctl::registry()) {
        weirctl::Runner run = setup(app);
        cmds.emplace_back(app.get_subcommands({}).back(), std::move(run));
    }
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    for (auto& [sub, run] : cmds)
        if (sub->parsed())
            return run();
    std::fprintf(stderr, "weirctl: no subcommand\n");
    return 2;
}
