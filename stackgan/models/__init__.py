"""Networks only: the DCGAN baseline and the StackGAN stages."""
