! A Fortran program in a compute loop (tests/integration/test_stack.py): it
! spins in victim_spin until a file named "stop" appears, then prints.
subroutine victim_spin(total)
  implicit none
  double precision, intent(inout) :: total
  logical :: there
  integer :: i
  do
    do i = 1, 2000000
      total = total + sqrt(dble(i))
    end do
    inquire(file='stop', exist=there)
    if (there) exit
  end do
end subroutine victim_spin

program stack_loop
  implicit none
  double precision :: total
  total = 0d0
  print '(a)', 'spinning'
  flush(6)
  call victim_spin(total)
  print '(a)', 'spun'
end program stack_loop
