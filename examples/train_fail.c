/* An example legacy trainer that fails after three epochs: exits 3. */
#include "train.h"

int main(int argc, char **argv)
{
    return train(argc, argv, 5, 3);
}
