/* herald: subcommand dispatch. */
#include <stdio.h>

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    puts("herald");
    return 0;
}
