/* An example legacy trainer that finishes: exits 0. */
#include "train.h"

int main(int argc, char **argv)
{
    return train(argc, argv, 5, 0);
}
