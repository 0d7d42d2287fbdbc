// pumptwinctl: command-line client of pumptwind. Everything is in RunCtl (ctl_app.cc).
#include <iostream>

#include "tools/ctl/ctl_commands.h"

int main(int argc, char** argv) { return pumptwin::ctl::RunCtl(argc, argv, std::cout, std::cerr); }
