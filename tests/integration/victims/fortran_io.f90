! Victim: Fortran output.  With an argument "crash" it ends with a runtime
! error (a bad number read from a string).
program victim
  implicit none
  integer :: epoch
  real :: loss, x
  character(len=16) :: arg, bad
  call get_command_argument(1, arg)
  do epoch = 1, 3
    loss = 1.0 / epoch
    print *, 'epoch', epoch, 'loss=', loss
    write(*, '(A,I0,A,F6.3)') 'step ', epoch, ' acc: ', 0.5 + epoch / 10.0
    write(0, '(A,I0)') 'stderr progress ', epoch
  end do
  if (trim(arg) == 'crash') then
    bad = 'not-a-number'
    read(bad, *) x
    print *, x
  end if
end program victim
